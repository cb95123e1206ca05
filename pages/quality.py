"""Quality page: which map to trust. Faithfulness, localisation, stability, sanity and complexity numbers per
method over a sample of test images, with curves, a ranking with its reasons, and a CSV export."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

import core
from core import charts
from core.explainers import get_method
from core.quality import evaluate, get_metric, list_metrics
from ui import cache, data_panel
from ui.data_panel import setup_panel
from ui.pickers import dataset_models, model_label, pick_methods, trust_banner
from ui.router import page

DATASET, MODEL, METHODS, METRICS, N, SEED = "q.dataset", "q.model", "q.methods", "q.metrics", "q.n", "q.seed"
COMPUTE, CANCEL, CANCELLED, RESULT = "q.compute", "q.cancel", "q.cancelled", "q.result"
DEFAULT_METHODS = ["grad_cam", "integrated_gradients", "saliency"]
REVEAL = 5  # a map "reveals" the marker when its mass there is at least this many times the marker's area share
DEFAULT_METRICS = ["deletion", "insertion", "pointing_game", "relevance_mass", "marker_mass", "sparseness"]


def request(model_path: str, sha: str, methods, metrics, n: int, seed: int, metric_params: dict) -> str:
    blob = json.dumps([model_path, sha, methods, metrics, n, seed, metric_params], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def show(report, metrics) -> None:
    table = report.table()
    st.subheader("Method × metric (mean ± 95% CI)")
    frame = pd.DataFrame([{"method": get_method(r["method"]).title, "metric": get_metric(r["metric"]).title,
                           "value": "n/a" if r["skipped"] else f"{r['mean']:.3f} ± {r['ci95']:.3f}"} for r in table])
    st.dataframe(frame.pivot(index="method", columns="metric", values="value"), width="stretch")
    skipped = sorted({f"{get_metric(r['metric']).title}: {r['skipped']}" for r in table if r["skipped"]})
    if skipped:
        st.caption("n/a — " + "; ".join(skipped))
    st.caption("Directions: " + ", ".join(f"{get_metric(m).title} {'higher' if get_metric(m).higher_is_better else 'lower'}"
                                          " is better" for m in metrics) + ". Localisation scores have the random map's "
               "score (the mask's area fraction) as a dotted line.")
    st.subheader("Ranking")
    failed = set(report.sanity_failures())
    for k, (m, _, why) in enumerate(report.ranking(), 1):
        st.markdown(f"{k}. **{get_method(m).title}**{' :red[fails the sanity check]' if m in failed else ''} — {why}.")
    cols = st.columns(2)
    for j, metric in enumerate(metrics):
        cls = get_metric(metric)
        if all(r["skipped"] for r in table if r["metric"] == metric):
            continue
        cols[j % 2].plotly_chart(charts.quality_bars(table, metric, cls.title, cls.higher_is_better), width="stretch",
                                 key=f"q.bar.{metric}")
    for metric in ("deletion", "insertion"):
        series = {get_method(c.method).title: (c.curves["x"], np.nanmean(np.asarray(c.curves["y"]), axis=0))
                  for c in report.cells if c.metric == metric and c.skipped is None and c.curves}
        if series:
            st.plotly_chart(charts.quality_curves(series, f"{get_metric(metric).title.split()[0]} curves (mean over images)",
                                                  "fraction of pixels", "target probability"), width="stretch",
                            key=f"q.curve.{metric}")
    cols = st.columns(2)
    for col, (what, label) in zip(cols, (("rank_correlation", "Spearman ρ"), ("ssim", "SSIM"))):
        series = {get_method(c.method).title: (c.curves["layers"], np.nanmean(np.asarray(c.curves[what]), axis=0))
                  for c in report.cells if c.metric == "randomisation" and c.skipped is None}
        if series:
            col.plotly_chart(charts.quality_curves(series, f"Cascading randomisation: {label} with the trained model's map",
                                                   "randomised down to", label), width="stretch", key=f"q.curve.{what}")
    marker = [c for c in report.cells if c.metric == "marker_mass" and c.skipped is None]
    if marker:
        base = float(np.nanmean([np.nanmean(c.extras["random_baseline"]) for c in marker]))
        reveal = [get_method(c.method).title for c in marker if c.mean >= REVEAL * base]
        st.info(f"**The shortcut.** The marker covers {base:.1%} of each image; a map that puts {REVEAL}x that share "
                f"of its positive mass or more on it reveals that the model looks there: "
                + (", ".join(reveal) if reveal else "no method here") + ".")
    stochastic = [c.method for c in report.cells if c.metric == "run_agreement" and c.skipped is None]
    if stochastic:
        st.caption("Run-to-run agreement of the stochastic methods: " + ", ".join(
            f"{get_method(c.method).title} ρ = {c.mean:.2f}" for c in report.cells
            if c.metric == "run_agreement" and c.skipped is None) + ". LIME's agreement against its number of "
            "samples is below.")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["image", "method", "metric", "value"])
    w.writeheader()
    w.writerows(report.rows)
    st.download_button("Per-image values (CSV)", buf.getvalue(), file_name=f"quality_{report.model_id}.csv",
                       mime="text/csv", key="q.csv")


def main() -> None:
    st.title("Explanation quality")
    st.caption("Which map to trust: how faithful, well localised, stable and sane each method's maps are for this "
               "model, over a sample of test images. Results are kept with the model.")
    picked = dataset_models(DATASET)
    if picked is None:
        return
    name, cards = picked
    c1, c2, c3 = st.columns([3, 1, 1])
    path = c1.selectbox("Model", list(cards), key=MODEL, format_func=lambda p: model_label(cards[p]))
    n = int(c2.number_input("Images", 2, 1000, 50, key=N, help="Test images in the sample"))
    seed = int(c3.number_input("Seed", 0, 2**31 - 1, 0, key=SEED))
    try:
        model, card = cache.model(path, cards[path].weights_sha256)
    except core.XaiError as exc:
        st.error(str(exc))
        return
    methods = pick_methods(model, METHODS, DEFAULT_METHODS)
    metrics = st.multiselect("Metrics", list_metrics(), default=DEFAULT_METRICS, key=METRICS,
                             format_func=lambda m: f"{get_metric(m).title} ({get_metric(m).category})")
    if not methods or not metrics:
        st.info("Pick at least one method and one metric.")
        return
    from core.quality.perturbation import REPLACEMENTS

    metric_params = {}
    if {"deletion", "insertion"} & set(metrics):
        how = st.selectbox("Deletion / insertion: removed pixels become", REPLACEMENTS, key="q.replacement",
                           format_func={"blur": "a blurred copy", "mean": "the image's mean colour",
                                        "zero": "black"}.get)
        metric_params = {m: {"replacement": how} for m in ("deletion", "insertion") if m in metrics}
    root, status = data_panel.resolve(name, card)
    if not status.ready:
        setup_panel(name)
        return
    trust_banner(card)  # the maps explain this model's predictions: say when those are not to be believed
    ds = cache.dataset(name, "test", card.input_size, root)
    key = request(path, card.weights_sha256, methods, metrics, n, seed, metric_params)
    slow = [get_metric(m).title for m in metrics if get_metric(m).reexplains]
    if slow:
        st.caption(f"{', '.join(slow)} run every method again (several times): the slowest part.")
    if st.button("Compute", key=COMPUTE, type="primary", icon=":material/analytics:",
                 help="Cells already computed for these settings are read from the model's folder"):
        st.session_state[CANCELLED] = None
        st.session_state[RESULT] = (key,)  # requested: later reruns (any click) show it again, from the cache
    if st.session_state.get(RESULT, (None,))[0] == key:
        if st.session_state.get(CANCELLED) == key:
            st.info("Cancelled. The cells already computed are kept with the model; *Compute* goes on from there.")
            return
        controls = st.empty()
        controls.button("Cancel", key=CANCEL, icon=":material/cancel:",
                        on_click=lambda: st.session_state.__setitem__(CANCELLED, key))
        bar = st.progress(0.0, text="Starting…")
        t0 = time.monotonic()

        def progress(stage: int, stages: int, label: str, done: int, total: int) -> None:
            frac = min(1.0, (stage + done / max(total, 1)) / max(stages, 1))
            elapsed = time.monotonic() - t0
            eta = f" · about {elapsed / frac * (1 - frac):.0f} s left" if frac > 0.02 and elapsed > 2 else ""
            bar.progress(frac, text=f"{label}: {done}/{total}{eta}")

        background = None
        if any(get_method(m).needs_background for m in methods):
            background = cache.background(name, card.input_size, root)
        try:
            report = evaluate(model, ds, methods, metrics, n=n, seed=seed, background=background, progress=progress,
                              cache_dir=Path(path) / "quality", weights=card.weights_sha256, model_id=card.id,
                              metric_params=metric_params)
        except core.XaiError as exc:
            st.error(str(exc))
            return
        finally:
            bar.empty()
            controls.empty()
        show(report, metrics)
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
