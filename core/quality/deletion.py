"""Deletion: remove the pixels a map calls important, most important first; the model's target probability falls fast for a faithful map."""
from __future__ import annotations

from core.quality.base import CurveSpec
from core.quality.registry import register
from core.quality.perturbation import CurveMetric


@register
class Deletion(CurveMetric):
    name = "deletion"
    title = "Deletion AUC"
    higher_is_better = False
    description = ("Remove pixels most-important-first (replaced by a blurred copy, the mean or black); the area under the target "
                   "probability curve. Low: the map found what the model needs.")
    paper = "Petsiuk, Das & Saenko, RISE, BMVC 2018"
    curves = (CurveSpec(x="x", y="y", title="Deletion curves (mean over images)", xtitle="fraction of pixels",
                        ytitle="target probability"),)
