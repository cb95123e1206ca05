"""A stored run: a folder of Parquet parts and a ``manifest.json`` written last.

::

    OUT/run.json                               the plan (written first; a resumed run must match it)
    OUT/parts/part-00000000-00000255.parquet   one row per image x method of ids 0..255 (written atomically)
    OUT/manifest.json                          written last and atomically, once every part is there

Each row: ``image_id``, ``label``, ``prediction``, ``target``, ``probability`` (of the target), ``method``, ``map``
(the map at the model's input resolution, row-major float32), ``height``, ``width``, ``seconds``, ``error`` (null
when the map is there). Read a run with pandas::

    import pandas as pd
    df = pd.read_parquet("out/run/parts")               # every part
    m = df[df.method == "grad_cam"].iloc[0]
    m["map"].reshape(m["height"], m["width"])
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.errors import RunError
from core.io import atomic_open, atomic_write_json
from core.runs.plan import SCHEMA_VERSION

PLAN_FILE, MANIFEST_FILE, PARTS = "run.json", "manifest.json", "parts"

SCHEMA = pa.schema([
    ("image_id", pa.int64()), ("label", pa.int64()), ("prediction", pa.int64()), ("target", pa.int64()),
    ("probability", pa.float32()), ("method", pa.string()), ("map", pa.list_(pa.float32())),
    ("height", pa.int32()), ("width", pa.int32()), ("seconds", pa.float64()), ("error", pa.string()),
])


def part_name(ids: tuple[int, ...]) -> str:
    """The part's file, relative to the run folder."""
    return f"{PARTS}/part-{ids[0]:08d}-{ids[-1]:08d}.parquet"


def table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows (dicts with the :data:`SCHEMA` columns; ``map`` an (H, W) array or ``None``) as an Arrow table."""
    cols: dict[str, list] = {f.name: [] for f in SCHEMA}
    for r in rows:
        for name in cols:
            v = r.get(name)
            if name == "map" and v is not None:
                v = np.ascontiguousarray(v, dtype=np.float32).reshape(-1)
            cols[name].append(v)
    arrays = []
    for f in SCHEMA:
        if f.name == "map":
            offsets, values = [0], []
            for v in cols["map"]:
                values.append(v if v is not None else np.zeros(0, np.float32))
                offsets.append(offsets[-1] + (0 if v is None else len(v)))
            mask = pa.array([v is None for v in cols["map"]])
            arrays.append(pa.ListArray.from_arrays(pa.array(offsets, pa.int32()),
                                                   pa.array(np.concatenate(values) if values else [], pa.float32()),
                                                   mask=mask))
        else:
            arrays.append(pa.array(cols[f.name], f.type))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def parquet_bytes(t: pa.Table) -> bytes:
    """The part file's bytes (zstd; the engines ship these, so a part is written by one process only)."""
    buf = io.BytesIO()
    pq.write_table(t, buf, compression="zstd")
    return buf.getvalue()


def entry(name: str, data: bytes) -> dict[str, Any]:
    """A part's manifest entry, from its bytes."""
    rows = int(pq.read_metadata(io.BytesIO(data)).num_rows)
    return {"file": name, "rows": rows, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def write_part(out: Path, name: str, data: bytes) -> dict[str, Any]:
    """Publish one part atomically; returns its manifest entry."""
    with atomic_open(out / name, "wb") as fh:
        fh.write(data)
    return entry(name, data)


def existing_part(out: Path, name: str, rows: int) -> bytes | None:
    """The bytes of a part already on disk with ``rows`` rows, else ``None`` (missing or unreadable: redo)."""
    try:
        data = (out / name).read_bytes()
        if pq.read_metadata(io.BytesIO(data)).num_rows != rows:
            return None
    except (OSError, pa.ArrowException):
        return None
    return data


def failures_of(data: bytes) -> list[dict[str, Any]]:
    """The rows of a part that carry an error: (id, method, message)."""
    t = pq.read_table(io.BytesIO(data), columns=["image_id", "method", "error"])
    errors = t.column("error").to_pylist()
    if not any(e is not None for e in errors):
        return []
    ids, methods = t.column("image_id").to_pylist(), t.column("method").to_pylist()
    return [{"id": i, "method": m, "message": e} for i, m, e in zip(ids, methods, errors) if e is not None]


def read_plan(out: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out / PLAN_FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise RunError(f"{out / PLAN_FILE} is unreadable ({exc}); remove the folder or choose another --out") from None


def write_plan(out: Path, plan: dict[str, Any]) -> None:
    atomic_write_json(out / PLAN_FILE, plan)


def clear(out: Path) -> None:
    """Remove a previous run's files from ``out`` (only the files a run writes)."""
    with contextlib.suppress(FileNotFoundError):
        (out / MANIFEST_FILE).unlink()
    for p in [*out.glob(f"{PARTS}/part-*.parquet"), *out.glob(f"{PARTS}/.part-*.tmp")]:
        p.unlink()
    with contextlib.suppress(FileNotFoundError):
        (out / PLAN_FILE).unlink()


def drop_manifest(out: Path) -> None:
    """A run about to change its parts first removes the manifest, so no manifest ever names a part being redone."""
    with contextlib.suppress(FileNotFoundError):
        (out / MANIFEST_FILE).unlink()


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    atomic_write_json(out / MANIFEST_FILE, manifest)


def read_manifest(out: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a finished run, checked: its schema version is known and every part it names is there with
    its row count (a missing or changed part is named)."""
    out = Path(out)
    path = out / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        why = "it is still running or was interrupted (run the same command again to finish it)" \
            if (out / PLAN_FILE).exists() else "this folder holds no run"
        raise RunError(f"{out} has no {MANIFEST_FILE}: {why}") from None
    except (OSError, ValueError) as exc:
        raise RunError(f"{path} is unreadable: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("schema_version") != SCHEMA_VERSION:
        raise RunError(f"{path} has schema version {manifest.get('schema_version') if isinstance(manifest, dict) else '?'}"
                       f"; this version reads {SCHEMA_VERSION}")
    for part in manifest.get("parts", []):
        p = out / part["file"]
        try:
            rows = pq.read_metadata(p).num_rows
        except (OSError, pa.ArrowException):
            raise RunError(f"{p} is missing or unreadable: the run is incomplete; run it again to redo that part") from None
        if rows != part["rows"]:
            raise RunError(f"{p} has {rows} rows, the manifest says {part['rows']}: the folder was changed")
    return manifest


def iter_parts(out: str | os.PathLike, manifest: dict[str, Any], columns: list[str] | None = None) -> Iterator[pa.Table]:
    for part in manifest["parts"]:
        yield pq.read_table(Path(out) / part["file"], columns=columns)


def load_table(out: str | os.PathLike, method: str | None = None, columns: list[str] | None = None) -> pa.Table:
    """Every row of a finished run (one method's when given), sorted by image id then method."""
    manifest = read_manifest(out)
    tables = [t if method is None else t.filter(pc.equal(t.column("method"), method))
              for t in iter_parts(out, manifest, columns if columns is None or "method" in columns
                                  else [*columns, "method"])]
    t = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    return t.sort_by([("image_id", "ascending"), ("method", "ascending")])


def maps_of(t: pa.Table) -> np.ndarray:
    """The ``map`` column of rows that all have maps of one shape, as float32 (N, H, W)."""
    if t.num_rows == 0:
        return np.zeros((0, 0, 0), np.float32)
    h, w = int(t.column("height")[0].as_py()), int(t.column("width")[0].as_py())
    flat = t.column("map").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.float32).reshape(t.num_rows, h, w)
