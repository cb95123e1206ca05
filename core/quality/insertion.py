"""Insertion: add the pixels a map calls important to a blurred copy, most important first; the probability recovers fast for a faithful map."""
from __future__ import annotations

from core.quality.base import CurveSpec
from core.quality.registry import register
from core.quality.perturbation import CurveMetric


@register
class Insertion(CurveMetric):
    name = "insertion"
    title = "Insertion AUC"
    insert = True
    description = ("Add pixels most-important-first to a blurred copy (or the mean, or black); the area under the target probability "
                   "curve. High: the first pixels the map names are enough for the model.")
    paper = "Petsiuk, Das & Saenko, RISE, BMVC 2018"
    curves = (CurveSpec(x="x", y="y", title="Insertion curves (mean over images)", xtitle="fraction of pixels",
                        ytitle="target probability"),)
