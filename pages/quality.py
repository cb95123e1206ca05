"""Quality page: which map to trust. Faithfulness, localisation, stability, sanity and complexity numbers per
method over a sample of test images, with curves, a ranking with its reasons, and a CSV export."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

import core
from core.explainers import get_method
from core.present import captions, charts
from core.present.exports import quality_csv
from core.quality import QUALITY_DIR, evaluate, get_metric, list_metrics
from ui import cache, data_panel
from ui.data_panel import setup_panel
from ui.pickers import dataset_models, fitted_dataset, model_label, pick_methods, trust_banner
from ui import jobs
from ui.progress import staged
from ui.widgets import metric_params
from ui.router import page

DATASET, MODEL, METHODS, METRICS, N, SEED = "q.dataset", "q.model", "q.methods", "q.metrics", "q.n", "q.seed"
COMPUTE, CANCEL, JOB = "q.compute", "q.cancel", "q.job"  # JOB: the quality job this page shows
DEFAULT_METHODS = ["grad_cam", "integrated_gradients", "saliency"]
REVEAL = 5  # a map "reveals" the marker when its mass there is at least this many times the marker's area share
DEFAULT_METRICS = ["deletion", "insertion", "pointing_game", "relevance_mass", "marker_mass", "sparseness"]


def request(model_path: str, sha: str, methods, metrics, n: int, seed: int, metric_params: dict) -> str:
    blob = json.dumps([model_path, sha, methods, metrics, n, seed, metric_params], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def show(report, metrics) -> None:
    """The table with confidence intervals, the ranking with its reasons, a bar chart per metric, every curve the
    metrics declare, the notes on the shortcut and on stochastic methods, and the CSV export."""
    table = report.table()
    st.subheader("Method × metric (mean ± 95% CI)")
    frame = pd.DataFrame([{"method": get_method(r["method"]).title, "metric": get_metric(r["metric"]).title,
                           "value": captions.quality_cell_text(r)} for r in table])
    st.dataframe(frame.pivot(index="method", columns="metric", values="value"), width="stretch")
    skipped = sorted({f"{get_metric(r['metric']).title}: {r['skipped']}" for r in table if r["skipped"]})
    if skipped:
        st.caption("n/a — " + "; ".join(skipped))
    st.caption(captions.quality_directions(metrics))
    st.subheader("Ranking")
    for line in captions.ranking_lines(report):
        st.markdown(line)
    bars = [m for m in metrics if not all(r["skipped"] for r in table if r["metric"] == m)]
    figures = [(f"q.bar.{m}", charts.quality_bars(table, m, get_metric(m).title, get_metric(m).higher_is_better))
               for m in bars] + [(f"q.curve.{k}", f) for k, f in charts.quality_curve_figures(report)]
    cols = st.columns(2)
    for j, (key, fig) in enumerate(figures):
        cols[j % 2].plotly_chart(fig, width="stretch", key=key)
    note = captions.shortcut_note(report, REVEAL)
    if note:
        st.info(note)
    note = captions.run_agreement_note(report)
    if note:
        st.caption(note)
    csv = quality_csv(report)
    st.download_button("Per-image values (CSV)", csv.data, file_name=csv.file_name, mime=csv.mime, key="q.csv")


def settings(cards: dict) -> tuple | None:
    """Model, sample, methods, metrics and the metrics' options; ``None`` until there is something to compute."""
    c1, c2, c3 = st.columns([3, 1, 1])
    path = c1.selectbox("Model", list(cards), key=MODEL, format_func=lambda p: model_label(cards[p]))
    n = int(c2.number_input("Images", 2, 1000, 50, key=N, help="Test images in the sample"))
    seed = int(c3.number_input("Seed", 0, 2**31 - 1, 0, key=SEED))
    try:
        model, card = cache.model(path, cards[path].weights_sha256)
    except core.XaiError as exc:
        st.error(str(exc))
        return None
    methods = pick_methods(model, METHODS, DEFAULT_METHODS)
    metrics = st.multiselect("Metrics", list_metrics(), default=DEFAULT_METRICS, key=METRICS,
                             format_func=lambda m: f"{get_metric(m).title} ({get_metric(m).category})")
    if not methods or not metrics:
        st.info("Pick at least one method and one metric.")
        return None
    return path, model, card, n, seed, methods, metrics, metric_params(metrics, "q.")


def start(key: str, name: str, path: str, card, model, ds, methods, metrics, n: int, seed: int, options: dict,
          background) -> None:
    """Hand the evaluation to the server's job runner: it goes on through reloads and other pages, and any session
    that opens this page sees it with its progress and Cancel. Cells are written to the model's folder as they are
    computed, so a cancelled run goes on from there."""
    def work(progress, cancel):
        return evaluate(model, ds, methods, metrics, n=n, seed=seed, background=background, progress=staged(progress),
                        cancel=cancel, cache_dir=Path(path) / QUALITY_DIR, weights=card.weights_sha256,
                        model_id=card.id, metric_params=options)

    job = jobs.runner().submit(work, kind="quality", label=f"{card.id}: {len(methods)} methods × {len(metrics)} "
                               f"metrics on {n} images", meta={"key": key, "dataset": name, "model": path,
                                                               "methods": methods, "metrics": metrics, "n": n,
                                                               "seed": seed})
    st.session_state[JOB] = job.id


def draw(job) -> None:
    """A quality job as it is now: progress with the time left in its current step, and Cancel."""
    st.progress(job.fraction, text=f"{job.label} · {job.message or 'waiting for a worker…'}")
    st.button("Cancel", key=CANCEL, icon=":material/cancel:", on_click=job.cancel,
              help="Stops it for every tab; the cells already computed are kept with the model")


def follow_settings() -> None:
    """A new session, or back from another page, while a quality job runs: the selections are the job's."""
    job = jobs.adopt(JOB, "quality")
    if job is None or not job.running:
        return
    for k, v in ((DATASET, job.meta["dataset"]), (MODEL, job.meta["model"]), (METHODS, job.meta["methods"]),
                 (METRICS, job.meta["metrics"]), (N, job.meta["n"]), (SEED, job.meta["seed"])):
        st.session_state.setdefault(k, v)


def main() -> None:
    st.title("Explanation quality")
    st.caption("Which map to trust: how faithful, well localised, stable and sane each method's maps are for this "
               "model, over a sample of test images. Results are kept with the model.")
    follow_settings()
    picked = dataset_models(DATASET)
    chosen = settings(picked[1]) if picked is not None else None
    if chosen is None:
        return
    path, model, card, n, seed, methods, metrics, options = chosen
    root, status = data_panel.resolve(picked[0], card)
    if not status.ready:
        setup_panel(picked[0])
        return
    trust_banner(card)  # the maps explain this model's predictions: say when those are not to be believed
    ds = fitted_dataset(picked[0], "test", card, root)  # as the model sees it (an imported model's class order)
    key = request(path, card.weights_sha256, methods, metrics, n, seed, options)
    slow = [get_metric(m).title for m in metrics if get_metric(m).reexplains]
    if slow:
        st.caption(f"{', '.join(slow)} run every method again (several times): the slowest part.")
    job = jobs.get(st.session_state.get(JOB))
    busy = job is not None and job.running
    if st.button("Compute", key=COMPUTE, type="primary", icon=":material/analytics:", disabled=busy,
                 help="A quality run is in progress (from this or another tab): wait for it, or cancel it" if busy
                 else "Runs on the server: you can leave the page. Cells already computed for these settings are "
                      "read from the model's folder"):
        background = (cache.background(picked[0], card.input_size, root)
                      if any(get_method(m).needs_background for m in methods) else None)
        if background is not None and background.shape[1] != card.channels:  # grey images for a colour model
            background = background.expand(-1, card.channels, -1, -1)
        start(key, picked[0], path, card, model, ds, methods, metrics, n, seed, options, background)
        job, busy = jobs.get(st.session_state.get(JOB)), True
    if busy:
        jobs.live(JOB, draw)
    elif job is not None and job.meta.get("key") == key:
        if job.state == "done":
            show(job.result, metrics)
        elif job.state == "cancelled":
            st.info("Cancelled. The cells already computed are kept with the model; *Compute* goes on from there.")
        else:
            st.error(f"The quality run failed: {job.error}")
    lime_samples(model, ds, seed)


def lime_samples(model, ds, seed: int) -> None:
    """How much LIME's map changes from run to run, and how that falls with its number of samples."""
    with st.expander("LIME: run-to-run agreement against the number of samples"):
        st.caption("Three runs with different seeds per image, on 4 test images; mean Spearman ρ between the runs' "
                   "maps. Published studies call LIME unstable across runs: this says by how much, on this model.")
        if not st.button("Compute the curve", key="q.lime"):
            return
        from core.quality.base import QualityInputs
        from core.quality import run_agreement as stability

        x = ds.batch(np.arange(4))
        targets = core.predict_proba(model, x).argmax(axis=1)
        inp = QualityInputs(model, x, targets, np.zeros((4, *x.shape[2:])), "lime", {"seed": seed})
        with st.spinner("Explaining 4 images 3 times per sample size…"):
            curve = stability.agreement_curve(inp, "num_samples", list(stability.LIME_SAMPLE_SIZES), runs=3)
        st.plotly_chart(charts.quality_curves({"LIME": (curve["x"], curve["y"])}, "LIME run-to-run agreement",
                                              "samples", "mean Spearman ρ"), width="stretch", key="q.lime.curve")


page(main)
