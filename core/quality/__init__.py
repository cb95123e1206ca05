"""Explanation quality: metrics behind one registry (one file per family), evaluated batched over a sample.

    from core.quality import evaluate, list_metrics
    report = evaluate(model, ds, ["grad_cam", "saliency"], ["deletion", "pointing_game"], n=100, seed=0)
    report.table()      # method x metric: mean, 95% CI, n
    report.rows         # one row per image, method and metric

Results are cached per (model weights, data sample, method and parameters, metric) in the model's folder
(``quality/``), so a metric is never recomputed for the same maps.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

# One file per metric; importing registers it, and the import order is the order of every list and table.
from . import deletion, insertion, road  # noqa: F401,I001  (faithfulness)
from . import pointing_game, relevance_mass, marker_mass  # noqa: F401,I001  (localisation)
from . import max_sensitivity, run_agreement  # noqa: F401,I001  (stability)
from . import randomisation, sparseness  # noqa: F401,I001  (sanity, complexity)
from .base import CATEGORIES, METRICS, Metric, MetricResult, QualityInputs

QUALITY_DIR = "quality"

#: ``progress(stage, stages, label, done, total)``
StageProgress = Callable[[int, int, str, int, int], None]


def list_metrics() -> list[str]:
    return METRICS.names()


def get_metric(name: str) -> type[Metric]:
    return METRICS.get(name)


@dataclass
class Cell:
    method: str
    metric: str
    values: np.ndarray
    curves: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None  # why the metric does not apply
    seconds: float = 0.0  # time of the metric itself (the maps excluded)

    @property
    def mean(self) -> float:
        v = self.values[np.isfinite(self.values)]
        return float(v.mean()) if len(v) else math.nan

    @property
    def ci95(self) -> float:
        """Half-width of the normal-approximation 95% confidence interval of the mean."""
        v = self.values[np.isfinite(self.values)]
        return float(1.96 * v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan

    @property
    def n(self) -> int:
        return int(np.isfinite(self.values).sum())


@dataclass
class QualityReport:
    model_id: str
    dataset: str
    split: str
    indices: np.ndarray
    cells: list[Cell]
    map_seconds: dict[str, float] = field(default_factory=dict)  # per method, maps computed in this call

    def cell(self, method: str, metric: str) -> Cell | None:
        return next((c for c in self.cells if c.method == method and c.metric == metric), None)

    def table(self) -> list[dict[str, Any]]:
        rows = []
        for c in self.cells:
            m = get_metric(c.metric)
            rows.append({"method": c.method, "metric": c.metric, "category": m.category,
                         "higher_is_better": m.higher_is_better, "mean": c.mean, "ci95": c.ci95, "n": c.n,
                         "random_baseline": (float(np.nanmean(c.extras["random_baseline"]))
                                             if "random_baseline" in c.extras else None),
                         "skipped": c.skipped})
        return rows

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One row per image, method and metric (the CSV export)."""
        return [{"image": int(i), "method": c.method, "metric": c.metric, "value": float(v)}
                for c in self.cells if c.skipped is None for i, v in zip(self.indices, c.values)]

    def sanity_failures(self) -> list[str]:
        return [c.method for c in self.cells if c.metric == "randomisation" and c.skipped is None
                and c.mean >= randomisation.FAIL_RHO]

    def ranking(self) -> list[tuple[str, float, str]]:
        """Methods ordered by their mean rank over the metrics that apply (1 = best), each with the reasoning
        in plain words: where it did best and worst, and whether it failed the sanity check."""
        methods = list(dict.fromkeys(c.method for c in self.cells))
        metrics = list(dict.fromkeys(c.metric for c in self.cells))
        ranks: dict[str, dict[str, float]] = {m: {} for m in methods}
        for metric in metrics:
            scored = [(c.method, c.mean) for c in self.cells if c.metric == metric and c.skipped is None
                      and math.isfinite(c.mean)]
            if len(scored) < 2:
                continue
            sign = -1 if get_metric(metric).higher_is_better else 1
            order = sorted(scored, key=lambda mv: sign * mv[1])
            for r, (method, _) in enumerate(order, 1):
                ranks[method][metric] = r
        failed = set(self.sanity_failures())
        out = []
        for m in methods:
            if not ranks[m]:
                continue
            mean_rank = float(np.mean(list(ranks[m].values())))
            best = min(ranks[m], key=ranks[m].get)
            worst = max(ranks[m], key=ranks[m].get)
            if ranks[m][best] == ranks[m][worst]:
                why = f"rank {ranks[m][best]} on every one of {len(ranks[m])} metrics"
            else:
                why = (f"mean rank {mean_rank:.1f} over {len(ranks[m])} metrics; best on {get_metric(best).title} "
                       f"({self.cell(m, best).mean:.3f}, rank {ranks[m][best]}), weakest on {get_metric(worst).title} "
                       f"({self.cell(m, worst).mean:.3f}, rank {ranks[m][worst]})")
            if m in failed:
                why += f"; FAILS the randomisation sanity check (rank correlation {self.cell(m, 'randomisation').mean:.2f} "
                why += "with the randomised model's map): its map barely depends on what the model learned"
                mean_rank += len(methods)  # a method that fails the sanity check goes below every one that passes
            out.append((m, mean_rank, why))
        return sorted(out, key=lambda t: t[1])


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
        c = _from_json(d)
        if c.n and (d["metric"] not in out or c.n > out[d["metric"]][1]):
            out[d["metric"]] = (c.mean, c.n)
    return out


def sample_indices(n_total: int, n: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(n_total, size=min(n, n_total), replace=False))


def _key(weights: str, dataset: str, split: str, indices: np.ndarray, method: str, params: dict, metric: str,
         metric_params: dict) -> str:
    blob = json.dumps([weights, dataset, split, indices.tolist(), method, params, metric, metric_params], sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _to_json(cell: Cell) -> dict:
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


def _from_json(d: dict) -> Cell:
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


def evaluate(model, ds, methods: Sequence[str], metrics: Sequence[str], n: int = 100, seed: int = 0,
             params: dict[str, dict] | None = None, background=None, progress: StageProgress | None = None,
             cancel=None, cache_dir: str | Path | None = None, weights: str = "", model_id: str = "",
             metric_params: dict[str, dict] | None = None) -> QualityReport:
    """Every metric for every method over ``n`` images of ``ds`` drawn with ``seed``; each method explains the
    model's predicted class. ``metric_params`` set a metric's options (e.g. ``{"deletion": {"replacement": "mean"}}``).
    Cells found in ``cache_dir`` are read, the others computed and written there."""
    from ..explainers import explain_batch, get_method
    from ..io import atomic_write_json
    from ..prediction import predict_proba

    metric_params = {m: dict((metric_params or {}).get(m, {})) for m in metrics}
    for m in metrics:
        get_metric(m)(**metric_params[m])  # unknown metric or option: refused before any work
    idx = sample_indices(len(ds), n, seed)
    images = ds.batch(idx)
    masks = ds.masks[idx] if ds.masks is not None else None
    marker = ds.extras.get("marker_masks")
    marker = marker[idx] if marker is not None else None
    targets = predict_proba(model, images).argmax(axis=1)
    stages = len(methods) * (1 + len(metrics))
    stage = 0
    cells = []
    map_seconds: dict[str, float] = {}
    cache = Path(cache_dir) if cache_dir else None

    def say(label: str):
        def tick(done: int, total: int) -> None:
            if progress:
                progress(stage, stages, label, done, total)
        return tick

    for method in methods:
        cls = get_method(method)
        p = dict((params or {}).get(method, {}))
        if cls.stochastic and "seed" not in p:
            p["seed"] = seed
        todo, found = [], {}
        for metric in metrics:
            key = _key(weights, ds.info.name, ds.split, idx, method, p, metric, metric_params[metric])
            path = cache / f"{key}.json" if cache else None
            if path is not None and path.is_file():
                try:
                    found[metric] = _from_json(json.loads(path.read_text()))
                    continue
                except (OSError, ValueError, KeyError):
                    pass  # unreadable: recomputed
            todo.append((metric, path))
        maps = None
        if todo:
            t0 = time.perf_counter()
            say(f"{cls.title}: maps")(0, len(idx))
            maps = np.stack([e.attribution for e in explain_batch(model, images, method, targets=targets.tolist(),
                                                                   background=background, cancel=cancel,
                                                                   progress=say(f"{cls.title}: maps"), **p)])
            map_seconds[method] = time.perf_counter() - t0
        stage += 1
        inp = QualityInputs(model, images, targets, maps, method, p, masks, marker, background, None, cancel)
        for metric in metrics:
            if metric in found:
                cells.append(found[metric])
                stage += 1
                continue
            path = dict(todo)[metric]
            m = get_metric(metric)(**metric_params[metric])
            why = m.applies(method, masks is not None, marker is not None)
            if why:
                cell = Cell(method, metric, np.full(len(idx), np.nan), skipped=why)
            else:
                inp.progress = say(f"{cls.title}: {m.title}")
                t0 = time.perf_counter()
                r = m.evaluate(inp)
                cell = Cell(method, metric, np.asarray(r.values, dtype=float), r.curves, r.extras,
                            seconds=time.perf_counter() - t0)
            if path is not None:
                atomic_write_json(path, _to_json(cell))
            cells.append(cell)
            stage += 1
    return QualityReport(model_id, ds.info.name, ds.split, idx, cells, map_seconds)


__all__ = ["CATEGORIES", "Cell", "METRICS", "Metric", "MetricResult", "QualityInputs", "QualityReport", "evaluate",
           "get_metric", "list_metrics", "sample_indices"]
