"""Max-sensitivity: how much a map changes under small input noise.

Written here rather than taken from captum's ``sensitivity_max``: captum's reports the absolute change, which
cannot be compared across methods whose maps have different units; ours divides by the map's own norm.
"""
from __future__ import annotations

import numpy as np
import torch

from core.quality.base import Metric, MetricResult, QualityInputs
from core.quality.registry import register


@register
class MaxSensitivity(Metric):
    name = "max_sensitivity"
    title = "Max-sensitivity"
    category = "stability"
    higher_is_better = False
    reexplains = True
    description = ("Largest relative change of the map, ||map(x + noise) - map(x)|| / ||map(x)||, over 5 draws of "
                   "uniform noise of radius 0.02. Low: stable.")
    paper = "Yeh et al., On the (In)fidelity and Sensitivity of Explanations, NeurIPS 2019"
    samples, radius = 5, 0.02

    def evaluate(self, inp: QualityInputs) -> MetricResult:
        g = torch.Generator().manual_seed(int(inp.params.get("seed", 0)))
        base = inp.maps.reshape(len(inp.maps), -1)
        norm = np.linalg.norm(base, axis=1)
        worst = np.zeros(len(base))
        for s in range(self.samples):
            noise = (torch.rand(inp.images.shape, generator=g) * 2 - 1) * self.radius
            other = inp.explain((inp.images + noise).clamp(0, 1)).reshape(len(base), -1)
            worst = np.maximum(worst, np.linalg.norm(other - base, axis=1))
            if inp.progress:
                inp.progress(s + 1, self.samples)
        with np.errstate(invalid="ignore", divide="ignore"):
            return MetricResult(np.where(norm > 0, worst / norm, np.nan))
