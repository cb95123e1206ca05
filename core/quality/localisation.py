"""Localisation against ground-truth masks: is the map on the object (or on a spurious marker)?

Written here (a few lines each): Quantus has PointingGame and RelevanceMassAccuracy, but they take numpy
batches one metric call at a time and re-check inputs per call; ours score a batch of maps in one numpy
expression and report the random-map baseline (the mask's area fraction) beside each score.
"""
from __future__ import annotations

import numpy as np

from .base import Metric, MetricResult, QualityInputs, register


def pointing_game(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """1.0 where the map's maximum lies inside the mask (any of its pixels, when several share the maximum, as in
    Quantus), else 0.0; NaN for a constant map (no maximum)."""
    flat = maps.reshape(len(maps), -1)
    top = flat == flat.max(axis=1, keepdims=True)
    hit = (top & masks.reshape(len(masks), -1)).any(axis=1).astype(float)
    hit[flat.max(axis=1) == flat.min(axis=1)] = np.nan
    return hit


def relevance_mass(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Fraction of the positive attribution that falls inside the mask; NaN where there is none."""
    pos = np.clip(maps, 0, None).reshape(len(maps), -1)
    total = pos.sum(axis=1)
    inside = (pos * masks.reshape(len(masks), -1)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / total, np.nan)


def area(masks: np.ndarray) -> np.ndarray:
    return masks.reshape(len(masks), -1).mean(axis=1)


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


@register
class RelevanceMass(Metric):
    name = "relevance_mass"
    title = "Relevance mass on the object"
    category = "localisation"
    needs_masks = True
    description = ("Fraction of the positive attribution inside the object mask; a random map scores the "
                   "mask's area fraction.")
    paper = "Arras, Osman & Samek, CLEVR-XAI, Information Fusion 2022"

    def evaluate(self, inp: QualityInputs) -> MetricResult:
        return MetricResult(relevance_mass(inp.maps, inp.masks), extras={"random_baseline": area(inp.masks)})


@register
class MarkerMass(Metric):
    name = "marker_mass"
    title = "Relevance mass on the spurious marker"
    category = "localisation"
    needs_marker = True
    description = ("Fraction of the positive attribution on the corner marker of shapes_spurious. High: the map "
                   "reveals that the model looks at the shortcut (a virtue in a map, a fault in the model).")
    paper = "Lapuschkin et al., Unmasking Clever Hans predictors, Nature Communications 2019"

    def evaluate(self, inp: QualityInputs) -> MetricResult:
        return MetricResult(relevance_mass(inp.maps, inp.marker_masks), extras={"random_baseline": area(inp.marker_masks)})
