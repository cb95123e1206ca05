"""Whole-split runs: images per second of the local engine and of Ray (1 and 2 workers, on a cluster started
beforehand, whose start-up is timed on its own), beside the plain batched model calls that are the floor, all in one
run; bytes per stored map; the clustering's time for 2,000 maps.

    python -m benchmarks --methods none --runs [--model models/shapes-small_cnn]
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: (method, parameters, images, images per part): IG is timed on the first 256 test images (to keep the benchmark
#: in minutes) in parts of 64, so that two workers have parts to share
CASES = (("grad_cam", {}, None, 256), ("integrated_gradients", {"n_steps": 32}, 256, 64))


def _floor(model, ds, method: str, params: dict, n: int, batch: int = 32) -> float:
    """Seconds for the model images the method declares, as plain batched forward + backward passes (no library)."""
    from core.explainers import get_method
    from core.explainers.engine import resolve_params

    per_image = get_method(method).cost(resolve_params(method, model, **params), model, tuple(ds.batch([0]).shape[1:]))
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        x = ds.batch(np.arange(start, min(n, start + batch)))
        for _ in range(per_image):
            xi = x.clone().requires_grad_(True)
            out = model(xi)
            out.max(dim=1).values.sum().backward()
    return time.perf_counter() - t0


def _timed(fn) -> tuple[Any, float, list[float]]:
    """``fn(progress)``'s result, its seconds, and the times (from the start) at which progress arrived."""
    marks: list[float] = []
    t0 = time.perf_counter()
    out = fn(lambda done, total, msg="": marks.append(time.perf_counter() - t0) if done else None)
    return out, time.perf_counter() - t0, marks


def bench_runs(model_path: str) -> dict[str, Any]:
    import ray

    from core import load_dataset, load_model
    from core.runs import explain_split, load_table, maps_of
    from core.runs.engines import start_ray
    from core.runs.strategies import cluster_maps

    model, card = load_model(model_path)
    ds = load_dataset(card.dataset, split="test", size=card.input_size)
    out: dict[str, Any] = {"model": card.id, "input_size": card.input_size, "threads": torch.get_num_threads(),
                           "cases": {}}
    t0 = time.perf_counter()
    start_ray()
    out["ray_start_seconds"] = time.perf_counter() - t0
    tmp = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    try:
        for method, params, limit, part_size in CASES:
            n = limit or len(ds)
            row: dict[str, Any] = {"images": n, "params": params, "part_size": part_size}
            with torch.enable_grad():
                row["floor_seconds"] = _floor(model, ds, method, params, n)
            for name, kw in (("local", {}), ("ray_1", {"engine": "ray", "workers": 1}),
                             ("ray_2", {"engine": "ray", "workers": 2})):
                folder = tmp / f"{method}-{name}"
                manifest, seconds, marks = _timed(lambda p: explain_split(
                    model_path, None, "test", [method], folder, params={method: params}, limit=limit, progress=p,
                    resume=False, part_size=part_size, **kw))
                first = marks[0] if marks else seconds
                row[name] = {"seconds": seconds, "first_part_seconds": first,
                             "bytes_per_map": sum(p["bytes"] for p in manifest["parts"]) / manifest["rows"]}
            out["cases"][method] = row
        first = CASES[0][0]
        maps = maps_of(load_table(tmp / f"{first}-local", first))
        rng = np.random.default_rng(0)
        two_thousand = np.concatenate([maps, maps + rng.normal(0, 0.01, maps.shape).astype(np.float32)])[:2000]
        t0 = time.perf_counter()
        c = cluster_maps(two_thousand)
        out["clustering"] = {"maps": len(two_thousand), "seconds": time.perf_counter() - t0, "k": c.k}
    finally:
        ray.shutdown()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return out


def report(r: dict[str, Any]) -> str:
    lines = [f"Whole-split runs: {r['model']} at {r['input_size']} px, {r['threads']} torch threads; Ray local cluster "
             f"start {r['ray_start_seconds']:.1f} s (not counted below)", "",
             "| method | images | floor: plain batched passes | local engine | Ray, 1 worker | Ray, 2 workers | "
             "bytes per stored map |", "|---|---|---|---|---|---|---|"]
    for method, row in r["cases"].items():
        n = row["images"]

        def rate(s: float) -> str:
            return f"{n / s:.1f} img/s ({s:.1f} s)"

        ray_cells = [f"{rate(row[k]['seconds'])}; after the first part {row[k]['first_part_seconds']:.1f} s" for k in
                     ("ray_1", "ray_2")]
        lines.append(f"| {method} {row['params'] or ''} | {n} in parts of {row['part_size']} | {rate(row['floor_seconds'])} | "
                     f"{rate(row['local']['seconds'])} | {ray_cells[0]} | {ray_cells[1]} | "
                     f"{row['local']['bytes_per_map']:,.0f} |")
    c = r["clustering"]
    lines += ["", f"Clustering {c['maps']:,} maps (16x16 blocks, k-NN graph, spectral embedding, eigengap, k-means): "
                  f"{c['seconds']:.2f} s (k = {c['k']})"]
    return "\n".join(lines)
