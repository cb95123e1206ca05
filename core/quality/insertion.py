"""Insertion: add the pixels a map calls important to a blurred copy, most important first; the probability recovers fast for a faithful map."""
from __future__ import annotations

from .base import register
from .perturbation import CurveMetric


@register
class Insertion(CurveMetric):
    name = "insertion"
    title = "Insertion AUC"
    insert = True
    description = ("Add pixels most-important-first to a blurred copy (or the mean, or black); the area under the target probability "
                   "curve. High: the first pixels the map names are enough for the model.")
    paper = "Petsiuk, Das & Saenko, RISE, BMVC 2018"
