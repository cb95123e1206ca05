"""The evaluation run: every metric for every method over a seeded sample of a dataset, batched, with progress
and cancel, reading and writing each cell through the result store (:mod:`core.quality.store`).

    from core.quality import evaluate
    report = evaluate(model, ds, ["grad_cam", "saliency"], ["deletion", "pointing_game"], n=100, seed=0)
    report.table()      # method x metric: mean, 95% CI, n
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from core.explainers import explain_batch, get_method
from core.modelling.prediction import predict_proba
from core.quality.base import QualityInputs
from core.quality.registry import get_metric
from core.quality.report import Cell, QualityReport
from core.quality.store import cell_key, read_cell, write_cell

#: ``progress(stage, stages, label, done, total)``. A progress callable with a ``plan`` attribute (see
#: :func:`ui.progress.staged`) is first given the seconds each stage is expected to take (:func:`stage_seconds`).
StageProgress = Callable[[int, int, str, int, int], None]
#: what each category of metric does with the model, for its time estimate: perturbed copies pushed through it
#: (faithfulness), nothing (the maps alone), or the method run again (stability, sanity)
READS_THE_MAPS = ("localisation", "complexity")


def sample_indices(n_total: int, n: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(n_total, size=min(n, n_total), replace=False))


def metric_seconds(metric, method: str, n: int, passes, has_masks: bool = True, has_marker: bool = True) -> float | None:
    """Seconds ``metric`` (an instance) is expected to take over the maps of ``n`` images, from the measured pass
    rates (``passes.of(path)``: :class:`core.explainers.timing.PassRates` or an ``Estimator``): none for a metric
    that does not apply or reads the maps alone; deletion and insertion push ``n x (steps + 1)`` copies through the
    fast path; ``None`` (not known before it runs) for the others, which run the method again or impute removed
    pixels."""
    from core.quality.perturbation import CurveMetric

    if metric.applies(method, has_masks, has_marker) or metric.category in READS_THE_MAPS:
        return 0.0
    if isinstance(metric, CurveMetric):
        return n * (metric.steps + 1) * passes.of("fast")
    return None


def stage_seconds(model, images, methods: Sequence[str], metrics: Sequence[str], params: dict[str, dict],
                  metric_params: dict[str, dict], todo: dict[str, set[str]], has_masks: bool = True,
                  has_marker: bool = True) -> list[float | None]:
    """The seconds each stage of :func:`evaluate` is expected to take, in its order (per method: the maps, then each
    metric): measured rates (:func:`core.explainers.timing.estimator_for`) times each stage's work; 0 for a stage
    whose cells are stored already (``todo``: the metrics still to compute per method)."""
    from core.explainers.timing import estimator_for

    est = estimator_for(model, tuple(images.shape[1:]))
    out: list[float | None] = []
    for method in methods:
        out.append(est.seconds(method, images=len(images), **params.get(method, {})) if todo[method] else 0.0)
        for metric in metrics:
            m = get_metric(metric)(**metric_params[metric])
            out.append(metric_seconds(m, method, len(images), est, has_masks, has_marker)
                       if metric in todo[method] else 0.0)
    return out


def _method_params(method: str, params: dict[str, dict] | None, seed: int) -> dict:
    p = dict((params or {}).get(method, {}))
    if get_method(method).stochastic and "seed" not in p:
        p["seed"] = seed
    return p


def evaluate(model, ds, methods: Sequence[str], metrics: Sequence[str], n: int = 100, seed: int = 0,
             params: dict[str, dict] | None = None, background=None, progress: StageProgress | None = None,
             cancel=None, cache_dir: str | Path | None = None, weights: str = "", model_id: str = "",
             metric_params: dict[str, dict] | None = None) -> QualityReport:
    """Every metric for every method over ``n`` images of ``ds`` drawn with ``seed``; each method explains the
    model's predicted class. ``metric_params`` set a metric's options (e.g. ``{"deletion": {"replacement": "mean"}}``).
    Cells found in ``cache_dir`` are read, the others computed and written there."""
    # every option resolved (defaults filled in) before any work: an unknown metric or option is refused here, and
    # a cell computed with an option left at its default is the same cell as one computed with it given
    metric_params = {m: get_metric(m)(**(metric_params or {}).get(m, {})).settings for m in metrics}
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

    def stored(method: str, metric: str) -> bool:
        key = cell_key(weights, ds.info.name, ds.split, idx, method, _method_params(method, params, seed), metric,
                       metric_params[metric])
        return cache is not None and (cache / f"{key}.json").is_file()

    plan = getattr(progress, "plan", None)
    if plan is not None:
        todo_all = {m: {q for q in metrics if not stored(m, q)} for m in methods}
        plan(stage_seconds(model, images, methods, metrics, {m: _method_params(m, params, seed) for m in methods},
                           metric_params, todo_all, masks is not None, marker is not None))

    for method in methods:
        cls = get_method(method)
        p = _method_params(method, params, seed)
        todo, found = [], {}
        for metric in metrics:
            key = cell_key(weights, ds.info.name, ds.split, idx, method, p, metric, metric_params[metric])
            path = cache / f"{key}.json" if cache else None
            cell = read_cell(path) if path is not None else None
            if cell is not None:
                found[metric] = cell
                continue
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
                write_cell(path, cell)
            cells.append(cell)
            stage += 1
    return QualityReport(model_id, ds.info.name, ds.split, idx, cells, map_seconds)
