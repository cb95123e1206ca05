"""Pointing game: is the map's maximum on the object?

Written here (a few lines each): Quantus has PointingGame and RelevanceMassAccuracy, but they take numpy
batches one metric call at a time and re-check inputs per call; ours score a batch of maps in one numpy
expression (Quantus gives the same numbers: tested) and report the random-map baseline beside each score.
"""
from __future__ import annotations

import numpy as np

from core.quality.base import Metric, MetricResult, QualityInputs
from core.quality.registry import register


def area(masks: np.ndarray) -> np.ndarray:
    """The mask's area fraction per image: a random map's hit rate."""
    return masks.reshape(len(masks), -1).mean(axis=1)


def pointing_game(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """1.0 where the map's maximum lies inside the mask (any of its pixels, when several share the maximum, as in
    Quantus), else 0.0; NaN for a constant map (no maximum)."""
    flat = maps.reshape(len(maps), -1)
    top = flat == flat.max(axis=1, keepdims=True)
    hit = (top & masks.reshape(len(masks), -1)).any(axis=1).astype(float)
    hit[flat.max(axis=1) == flat.min(axis=1)] = np.nan
    return hit


@register
class PointingGame(Metric):
    name = "pointing_game"
    title = "Pointing game"
    category = "localisation"
    needs_masks = True
    description = "Is the map's maximum on the object? The hit rate; a random map hits at the object's area fraction."
    paper = "Zhang et al., Top-down Neural Attention by Excitation Backprop, ECCV 2016"

    def evaluate(self, inp: QualityInputs) -> MetricResult:
        return MetricResult(pointing_game(inp.maps, inp.masks), extras={"random_baseline": area(inp.masks)})
