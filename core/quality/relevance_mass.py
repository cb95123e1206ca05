"""Relevance mass inside an object mask.

Written here (a few lines each): Quantus has PointingGame and RelevanceMassAccuracy, but they take numpy
batches one metric call at a time and re-check inputs per call; ours score a batch of maps in one numpy
expression (Quantus gives the same numbers: tested) and report the random-map baseline beside each score.
"""
from __future__ import annotations

import numpy as np

from core.quality.base import Metric, MetricResult, QualityInputs
from core.quality.registry import register
from core.quality.pointing_game import area


def relevance_mass(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Fraction of the positive attribution that falls inside the mask; NaN where there is none."""
    pos = np.clip(maps, 0, None).reshape(len(maps), -1)
    total = pos.sum(axis=1)
    inside = (pos * masks.reshape(len(masks), -1)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / total, np.nan)


@register
class RelevanceMass(Metric):
    name = "relevance_mass"
    title = "Relevance mass on the object"
    category = "localisation"
    needs_masks = True
    description = ("Fraction of the positive attribution inside the object mask; a random map scores the "
                   "mask's area fraction.")
    paper = "Arras, Osman & Samek, CLEVR-XAI, Information Fusion 2022"

    @staticmethod
    def region(inp: QualityInputs):
        """The mask the mass is measured in."""
        return inp.masks

    def evaluate(self, inp: QualityInputs) -> MetricResult:
        mask = self.region(inp)
        return MetricResult(relevance_mass(inp.maps, mask), extras={"random_baseline": area(mask)})
