"""Plotly figures for the app (built fresh on each call: figures are mutable, never cache them)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import plotly.graph_objects as go


#: top-k bars: the true class, a wrong prediction, any other class (no label: the prediction is just first)
TRUE_COLOUR, WRONG_COLOUR, OTHER_COLOUR = "#2ca02c", "#d62728", "#1f77b4"


def topk_probabilities(proba: np.ndarray, classes: Sequence[str], k: int = 5, highlight: int | None = None) -> go.Figure:
    """Horizontal bar chart of the ``k`` most probable classes, most probable on top.

    ``highlight`` is the true class: its bar is green, and the predicted class's bar is red only when the
    prediction is wrong.
    """
    order = np.argsort(proba)[::-1][: min(k, len(classes))]
    predicted = int(order[0])

    def colour(i: int) -> str:
        if highlight is not None and i == highlight:
            return TRUE_COLOUR
        if highlight is not None and i == predicted:
            return WRONG_COLOUR
        return OTHER_COLOUR

    colours = [colour(int(i)) for i in order]
    fig = go.Figure(go.Bar(
        x=[float(proba[i]) for i in order][::-1], y=[classes[i] for i in order][::-1], orientation="h",
        marker_color=colours[::-1], text=[f"{proba[i]:.1%}" for i in order][::-1], textposition="auto",
    ))
    fig.update_layout(title="Top-k class probabilities", xaxis=dict(range=[0, 1], title="probability"),
                      height=60 + 36 * len(order), margin=dict(l=10, r=10, t=40, b=30))
    return fig


def per_class_metrics(metrics: dict[str, Any]) -> go.Figure:
    """Grouped bars of precision / recall / F1 per class from a model card's ``metrics``."""
    per_class = metrics.get("per_class", {})
    classes = list(per_class)
    fig = go.Figure()
    for key, name in (("precision", "Precision"), ("recall", "Recall"), ("f1-score", "F1")):
        fig.add_bar(name=name, x=classes, y=[per_class[c][key] for c in classes])
    acc = metrics.get("accuracy")
    title = "Per-class test metrics" + (f" (accuracy {acc:.1%})" if acc is not None else "")
    fig.update_layout(barmode="group", title=title, yaxis=dict(range=[0, 1.05]), height=320, margin=dict(l=10, r=10, t=40, b=30))
    return fig


def agreement_heatmap(methods: Sequence[str], matrix: np.ndarray, labels: Sequence[str] | None = None) -> go.Figure:
    """Heat map of pairwise Spearman correlations between methods, in [-1, 1]."""
    names = list(labels or methods)
    text = [[("" if v != v else f"{v:.2f}") for v in row] for row in matrix]
    fig = go.Figure(go.Heatmap(z=matrix, x=names, y=names, zmin=-1, zmax=1, colorscale="RdBu", reversescale=True,
                               text=text, texttemplate="%{text}", colorbar=dict(title="Spearman ρ")))
    fig.update_layout(title="Method agreement (mean Spearman rank correlation of |map|)", height=120 + 40 * len(names),
                      margin=dict(l=10, r=10, t=40, b=10), yaxis=dict(autorange="reversed"))
    return fig


# -- training and performance -----------------------------------------------------------------------------------
def training_curves(history: Sequence[dict[str, Any]]) -> tuple[go.Figure, go.Figure]:
    """Per-epoch loss (train, val) and accuracy (train, val, val balanced) curves, the best epoch marked."""
    epochs = [h["epoch"] for h in history]
    best = history[-1].get("best_epoch") if history else None
    figs = []
    for title, series, rng in (("Loss", (("train_loss", "train"), ("val_loss", "val")), None),
                               ("Accuracy", (("train_accuracy", "train"), ("val_accuracy", "val"),
                                             ("val_balanced_accuracy", "val balanced")), [0, 1.02])):
        fig = go.Figure()
        for key, name in series:
            fig.add_scatter(x=epochs, y=[h.get(key) for h in history], mode="lines+markers", name=name)
        if best is not None:
            fig.add_vline(x=best, line_dash="dot", line_color="grey", annotation_text=f"best (epoch {best})")
        fig.update_layout(title=f"{title} per epoch", xaxis=dict(title="epoch", dtick=max(1, len(epochs) // 10)),
                          yaxis=dict(range=rng), height=300, margin=dict(l=10, r=10, t=40, b=30))
        figs.append(fig)
    return figs[0], figs[1]


def confusion_heatmap(cm: Sequence[Sequence[float]], classes: Sequence[str], normalise: bool) -> go.Figure:
    """Confusion matrix (rows: true class, columns: predicted), counts or row-normalised (recall on the diagonal)."""
    m = np.asarray(cm, dtype=float)
    z = m / np.maximum(m.sum(axis=1, keepdims=True), 1) if normalise else m
    text = [[f"{v:.2f}" if normalise else f"{int(v)}" for v in row] for row in z]
    fig = go.Figure(go.Heatmap(z=z, x=list(classes), y=list(classes), colorscale="Blues", text=text,
                               texttemplate="%{text}", zmin=0, zmax=1 if normalise else None,
                               colorbar=dict(title="fraction of row" if normalise else "images")))
    fig.update_layout(title="Confusion matrix (test)" + (", row-normalised" if normalise else ""),
                      xaxis=dict(title="predicted"), yaxis=dict(title="true", autorange="reversed"),
                      height=160 + 40 * len(classes), margin=dict(l=10, r=10, t=40, b=30))
    return fig


def roc_curves(curves: dict[str, Any]) -> go.Figure:
    fig = go.Figure()
    for c in curves.get("roc", []):
        fig.add_scatter(x=c["fpr"], y=c["tpr"], mode="lines", name=f"{c['class']} (AUC {c['auc']:.3f})")
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash", color="grey"), name="chance")
    fig.update_layout(title="ROC curves (one-vs-rest)", xaxis=dict(title="false positive rate", range=[0, 1]),
                      yaxis=dict(title="true positive rate", range=[0, 1.02]), height=360, margin=dict(l=10, r=10, t=40, b=30))
    return fig


def pr_curves(curves: dict[str, Any]) -> go.Figure:
    fig = go.Figure()
    for c in curves.get("pr", []):
        fig.add_scatter(x=c["recall"], y=c["precision"], mode="lines",
                        name=f"{c['class']} (AP {c['ap']:.3f}, base {c['prevalence']:.2f})")
    fig.update_layout(title="Precision-recall curves (one-vs-rest)", xaxis=dict(title="recall", range=[0, 1]),
                      yaxis=dict(title="precision", range=[0, 1.02]), height=360, margin=dict(l=10, r=10, t=40, b=30))
    return fig


def reliability_diagram(rel: dict[str, Any]) -> go.Figure:
    """Accuracy per confidence bin against the diagonal of perfect calibration, bin sizes as hover text."""
    edges = rel["edges"]
    centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    fig = go.Figure()
    fig.add_bar(x=centres, y=[a if a == a else 0 for a in rel["accuracy"]], width=(edges[1] - edges[0]) * 0.9,
                name="accuracy in bin", hovertext=[f"{n} images" for n in rel["count"]])
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash", color="grey"), name="perfect calibration")
    fig.update_layout(title=f"Reliability diagram (ECE {rel['ece']:.3f})", xaxis=dict(title="confidence (top class)", range=[0, 1]),
                      yaxis=dict(title="accuracy", range=[0, 1.02]), height=360, margin=dict(l=10, r=10, t=40, b=30))
    return fig


def models_side_by_side(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> go.Figure:
    """Grouped bars: one group per metric, one bar per model."""
    fig = go.Figure()
    for r in rows:
        fig.add_bar(name=r["model"], x=list(keys), y=[r.get(k) for k in keys])
    fig.update_layout(barmode="group", title="Models side by side (test split)", yaxis=dict(range=[0, 1.05]),
                      height=340, margin=dict(l=10, r=10, t=40, b=30))
    return fig


# -- explanation quality -----------------------------------------------------------------------------------------
def quality_bars(rows: Sequence[dict[str, Any]], metric: str, title: str, higher_is_better: bool) -> go.Figure:
    """One bar per method with its 95% confidence interval; the random-map baseline as a line where it exists."""
    rows = [r for r in rows if r["metric"] == metric and not r["skipped"]]
    from core.explainers import get_method

    fig = go.Figure(go.Bar(x=[get_method(r["method"]).title for r in rows], y=[r["mean"] for r in rows],
                           error_y=dict(type="data", array=[r["ci95"] if r["ci95"] == r["ci95"] else 0 for r in rows])))
    base = [r["random_baseline"] for r in rows if r.get("random_baseline") is not None]
    if base:
        fig.add_hline(y=float(np.mean(base)), line_dash="dot", annotation_text="random map")
    fig.update_layout(title=f"{title} ({'higher' if higher_is_better else 'lower'} is better)", height=300,
                      margin=dict(l=10, r=10, t=40, b=30))
    return fig


def quality_curves(series: dict[str, tuple[Sequence[float], Sequence[float]]], title: str, xtitle: str,
                   ytitle: str) -> go.Figure:
    """One line per method: e.g. the mean deletion curve, or rank correlation per randomised layer."""
    fig = go.Figure()
    for name, (x, y) in series.items():
        fig.add_scatter(x=list(x), y=list(y), mode="lines+markers", name=name)
    fig.update_layout(title=title, xaxis=dict(title=xtitle), yaxis=dict(title=ytitle), height=320,
                      margin=dict(l=10, r=10, t=40, b=30))
    return fig


def quality_curve_figures(report: Any) -> list[tuple[str, go.Figure]]:
    """Every curve that the report's metrics declare (``Metric.curves``): one figure per curve, one line per method
    (its mean over images), each with a key unique in the report."""
    from core.explainers import get_method
    from core.quality import get_metric

    out = []
    for metric in dict.fromkeys(c.metric for c in report.cells):
        for spec in get_metric(metric).curves:
            series = {get_method(c.method).title: (c.curves[spec.x], np.nanmean(np.asarray(c.curves[spec.y]), axis=0))
                      for c in report.cells if c.metric == metric and c.skipped is None and c.curves}
            if series:
                out.append((f"{metric}.{spec.y}", quality_curves(series, spec.title, spec.xtitle, spec.ytitle)))
    return out


# -- datasets ----------------------------------------------------------------------------------------------------
def class_distribution(counts: dict[str, Sequence[int]], classes: Sequence[str]) -> go.Figure:
    """Images per class, one group of bars per split."""
    fig = go.Figure([go.Bar(name=s, x=list(classes), y=list(v)) for s, v in counts.items()])
    fig.update_layout(barmode="group", title="Class distribution per split", height=340,
                      margin=dict(l=10, r=10, t=40, b=30))
    return fig


def strategy_map(embedding: np.ndarray, colour: Sequence[str], hover: Sequence[str], title: str) -> go.Figure:
    """The 2-D spectral embedding of a class's maps, one point per image, coloured by ``colour`` (a cluster, or
    right/wrong)."""
    fig = go.Figure()
    colour = np.asarray(colour)
    hover = np.asarray(hover)
    for value in sorted(set(colour.tolist())):
        sel = colour == value
        fig.add_trace(go.Scattergl(x=embedding[sel, 0], y=embedding[sel, 1], mode="markers", name=str(value),
                                   text=hover[sel], hovertemplate="%{text}<extra></extra>", marker={"size": 7}))
    fig.update_layout(title=title, height=360, margin=dict(l=10, r=10, t=40, b=10), legend_title_text="",
                      xaxis={"showticklabels": False, "title": "spectral 1"},
                      yaxis={"showticklabels": False, "title": "spectral 2"})
    return fig


def eigengap(eigenvalues: np.ndarray, chosen: int) -> go.Figure:
    """The smallest eigenvalues of the maps' graph Laplacian: the largest gap after k suggests k clusters."""
    k = np.arange(1, len(eigenvalues) + 1)
    fig = go.Figure(go.Scatter(x=k, y=eigenvalues, mode="lines+markers"))
    fig.add_vline(x=chosen + 0.5, line_dash="dot", annotation_text=f"gap: k = {chosen}")
    fig.update_layout(title="Eigenvalues (eigengap)", height=260, margin=dict(l=10, r=10, t=40, b=10),
                      xaxis_title="index", yaxis_title="eigenvalue")
    return fig
