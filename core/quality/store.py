"""The result store: computed cells as JSON files in a model's ``quality/`` folder, keyed by everything that
determines them (weights, data sample, method and parameters, metric and options), written atomically."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from core.io import atomic_write_json
from core.quality.report import Cell

QUALITY_DIR = "quality"


def cell_key(weights: str, dataset: str, split: str, indices: np.ndarray, method: str, params: dict, metric: str,
         metric_params: dict) -> str:
    blob = json.dumps([weights, dataset, split, indices.tolist(), method, params, metric, metric_params], sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def to_json(cell: Cell) -> dict:
    def conv(v):
        if isinstance(v, np.ndarray):
            return {"__array__": v.tolist()}
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v

    return {"method": cell.method, "metric": cell.metric, "values": cell.values.tolist(), "curves": conv(cell.curves),
            "extras": conv(cell.extras), "skipped": cell.skipped, "seconds": cell.seconds}


def from_json(d: dict) -> Cell:
    def conv(v):
        if isinstance(v, dict) and "__array__" in v:
            return np.asarray(v["__array__"], dtype=float)
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v

    return Cell(d["method"], d["metric"], np.asarray(d["values"], dtype=float), conv(d["curves"]), conv(d["extras"]),
                d["skipped"], float(d.get("seconds", 0.0)))


def read_cell(path: Path) -> Cell | None:
    """The cell stored at ``path``; ``None`` when absent or unreadable (it is then recomputed)."""
    if not path.is_file():
        return None
    try:
        return from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError):
        return None


def write_cell(path: Path, cell: Cell) -> None:
    atomic_write_json(path, to_json(cell))


def known_numbers(cache_dir: str | Path, method: str) -> dict[str, tuple[float, int]]:
    """The quality numbers already computed for a model (its ``quality/`` folder) and method: metric -> (mean, n),
    the largest sample of each metric (for Explain, under each map)."""
    out: dict[str, tuple[float, int]] = {}
    folder = Path(cache_dir)
    if not folder.is_dir():
        return out
    for p in folder.glob("*.json"):
        try:
            d = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if d.get("method") != method or d.get("skipped"):
            continue
        c = from_json(d)
        if c.n and (d["metric"] not in out or c.n > out[d["metric"]][1]):
            out[d["metric"]] = (c.mean, c.n)
    return out
