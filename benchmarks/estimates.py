"""Time estimates against the times they estimate, on the demo model: for each place the app, the CLI or the API says
how long something will take, the estimate it would show and the measured time, and their ratio.

    python -m benchmarks --methods none --estimates       # writes benchmarks/results/estimates.csv

The cases: a short training (the first time left shown, after the first steps, against the time that was really
left); the Explain sidebar's per-image estimate of LIME (adaptive, its default; fixed at 1,000 and 8,000 samples),
Integrated Gradients and Grad-CAM against one-image calls (the mean over a few test images); a Quality run (the
whole run's time left shown at its first report); a whole-split run (``explain_split``'s announced estimate); a
Compare grid (images x methods, the map job's first message). The estimates come from the same functions the faces call (:mod:`core.explainers.timing`,
:func:`core.quality.evaluation.stage_seconds`, :func:`core.runs.plan_run`); the target is within 1.5x either way.
"""
from __future__ import annotations

import csv
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from benchmarks.common import env, write_rows
from core import config

RESULTS = Path(__file__).resolve().parent / "results" / "estimates.csv"
#: estimate / actual must lie within this factor either way
TARGET = 1.5


def _row(case: str, settings: str, estimate: float, actual: float, images: int | str = "") -> dict[str, Any]:
    ratio = estimate / actual if actual > 0 else float("nan")
    return {"case": case, "settings": settings, "images": images, "estimate_s": round(estimate, 3),
            "actual_s": round(actual, 3), "ratio": round(ratio, 3),
            "within_target": bool(1 / TARGET <= ratio <= TARGET), "load_1min": round(os.getloadavg()[0], 2),
            "machine": env()}


def training() -> dict[str, Any]:
    """A short training of the demo recipe: the first time left the bar shows, against the time that was left."""
    from core.modelling.training import TrainConfig, train

    events: list[tuple[float, float, int]] = []

    def progress(p) -> None:
        if p.seconds_left is not None:
            events.append((time.perf_counter(), p.seconds_left, p.step))

    cfg = TrainConfig(dataset="shapes", epochs=2, max_train=960, model_id="bench-estimates")
    with tempfile.TemporaryDirectory(prefix="xai-bench-estimates-") as tmp:
        train(cfg, progress, tmp)
        end = time.perf_counter()
    t, left, step = events[0]
    return _row("training", f"shapes, small_cnn, 2 epochs of 960 images; first estimate, at step {step}", left,
                end - t)


def per_image(model, images, est, method: str, params: dict[str, Any], label: str) -> dict[str, Any]:
    """The sidebar's per-image estimate against one-image calls, one per image (the mean)."""
    from core.explainers import explain

    estimate = est.seconds(method, images=1, **params)
    times = []
    for i in range(len(images)):
        t0 = time.perf_counter()
        explain(model, images[i], method, **params)
        times.append(time.perf_counter() - t0)
    return _row(label, f"{method} {params or 'defaults'}; Explain sidebar, per image", estimate,
                statistics.mean(times), len(images))


def quality(model, ds) -> dict[str, Any]:
    """A Quality run: the whole run's time left at its first report, against the time that was left."""
    from core.eta import StageClock
    from core.quality import evaluate

    clock = StageClock()
    first: list[tuple[float, float]] = []

    def progress(stage: int, stages: int, label: str, done: int, total: int) -> None:
        left = clock.left(stage, done, total, key=label)
        if left is not None and not first:
            first.append((time.perf_counter(), left))

    progress.plan = clock.expect  # type: ignore[attr-defined]
    methods, metrics = ["grad_cam", "saliency", "integrated_gradients"], ["deletion", "insertion", "pointing_game",
                                                                          "sparseness"]
    evaluate(model, ds, methods, metrics, n=16, seed=0, progress=progress)
    end = time.perf_counter()
    t, left = first[0]
    return _row("quality", f"{', '.join(methods)} x {', '.join(metrics)}; whole run, at the first report", left,
                end - t, 16)


def split_run(model_path: str) -> dict[str, Any]:
    """A whole-split run on the local engine: the announced estimate against the run's time from then on."""
    from core.runs import explain_split

    stamp: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="xai-bench-estimates-run-") as tmp:
        explain_split(model_path, "shapes", "test", ["grad_cam", "integrated_gradients"], tmp, limit=64,
                      params={"integrated_gradients": {"n_steps": 16}},
                      announce=lambda plan, estimate: stamp.append((time.perf_counter(), estimate["seconds"])))
        end = time.perf_counter()
    t, estimate = stamp[0]
    return _row("whole-split run", "explain_split local, 64 test images, grad_cam + integrated_gradients "
                "{'n_steps': 16}", estimate, end - t, 64)


def compare(model, ds) -> dict[str, Any]:
    """A Compare grid as the map job computes it (one batched call per method, the targets given, as
    :func:`ui.cache.explanations` makes it): the expected seconds of its first message against the job's time."""
    from core.explainers import explain_batch
    from core.explainers.timing import estimator_for
    from core.modelling.prediction import predict_proba

    methods = {"grad_cam": {}, "integrated_gradients": {}, "lime": {"seed": 0}}
    x = ds.batch(range(4))
    targets = predict_proba(model, x).argmax(1).tolist()
    est = estimator_for(model, tuple(x.shape[1:]))
    estimate = sum(est.seconds(m, images=len(x), **p) for m, p in methods.items())
    t0 = time.perf_counter()
    for m, p in methods.items():
        explain_batch(model, x, m, targets=targets, **p)
    return _row("compare grid", f"4 images x {', '.join(methods)} (defaults); the job's first message", estimate,
                time.perf_counter() - t0, 4)


def measure(model_path: str | None = None) -> list[dict[str, Any]]:
    from core import load_dataset, load_model
    from core.explainers.timing import estimator_for

    path = model_path or str(config.models_dir() / config.DEMO_MODEL_ID)
    model, card = load_model(path)
    ds = load_dataset(card.dataset, split="test", size=card.input_size)
    images = ds.batch(range(100, 110))
    est = estimator_for(model, tuple(images.shape[1:]))  # the sidebar's: measured once, kept
    cases: list[Callable[[], dict[str, Any]]] = [
        lambda: per_image(model, images[:8], est, "lime", {}, "LIME, adaptive"),
        lambda: per_image(model, images[:3], est, "lime", {"num_samples": 1000}, "LIME, fixed 1,000"),
        lambda: per_image(model, images[:2], est, "lime", {"num_samples": 8000}, "LIME, fixed 8,000"),
        lambda: per_image(model, images[:5], est, "integrated_gradients", {}, "gradient method"),
        lambda: per_image(model, images[:10], est, "grad_cam", {}, "CAM"),
        lambda: compare(model, ds),
        lambda: quality(model, ds),
        lambda: split_run(path),
        training,
    ]
    return [case() for case in cases]


def write(rows: list[dict], path: Path = RESULTS) -> Path:
    return write_rows(rows, path)


def read(path: Path = RESULTS) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _seconds(value: str | float) -> str:
    """Two decimals, three below a tenth of a second (a Grad-CAM map takes milliseconds)."""
    v = float(value)
    return f"{v:.3f}" if v < 0.1 else f"{v:.2f}"


def table(rows: list[dict]) -> str:
    """The Markdown table of a results file's rows."""
    out = [f"**Estimates against actual times, demo model** ({rows[0]['machine']}; target: within {TARGET}x either "
           "way)", "",
           "| case | what was estimated | images | estimate (s) | actual (s) | estimate / actual | within target | "
           "load (1 min) |",
           "|---|---|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        within = r["within_target"] in (True, "True")
        out.append(f"| {r['case']} | {r['settings']} | {r['images']} | {_seconds(r['estimate_s'])} | "
                   f"{_seconds(r['actual_s'])} | {float(r['ratio']):.2f} | {'yes' if within else '**no**'} | "
                   f"{float(r['load_1min']):.1f} |")
    return "\n".join(out)


def report(model_path: str | None = None) -> str:
    t0 = time.perf_counter()
    rows = measure(model_path)
    path = write(rows)
    return (table(rows) + f"\n\n(written to {path.relative_to(Path(__file__).resolve().parents[1])}; "
            f"{time.perf_counter() - t0:.0f} s)")
