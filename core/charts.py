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
