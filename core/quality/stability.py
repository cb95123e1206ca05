"""Stability: small input noise (max-sensitivity) and, for stochastic methods, run-to-run agreement.

Max-sensitivity is written here rather than taken from captum's ``sensitivity_max``: captum's reports the
absolute change, which cannot be compared across methods whose maps have different units, and calls the
explanation function once per perturbation of the whole batch anyway; ours divides by the map's own norm.
"""
from __future__ import annotations

import itertools

import numpy as np
import torch
from scipy.stats import spearmanr

from .base import Metric, MetricResult, QualityInputs, register


def rank_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of two batches of maps, per image (NaN where one map is constant)."""
    out = np.full(len(a), np.nan)
    for i in range(len(a)):
        x, y = a[i].ravel(), b[i].ravel()
        if np.ptp(x) > 0 and np.ptp(y) > 0:
            out[i] = spearmanr(x, y).statistic
    return out


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


def run_agreement(inp: QualityInputs, runs: int = 3, **overrides) -> np.ndarray:
    """Mean pairwise rank correlation of ``runs`` maps of each image with different seeds."""
    seed = int(inp.params.get("seed", 0))
    maps = [inp.explain(inp.images, seed=seed + 1000 * r, **overrides) for r in range(runs)]
    pairs = [rank_correlation(a, b) for a, b in itertools.combinations(maps, 2)]
    return np.nanmean(np.stack(pairs), axis=0) if pairs else np.full(len(inp.images), np.nan)


#: the LIME sample sizes the Quality page's agreement curve uses
LIME_SAMPLE_SIZES = (100, 250, 500, 1000)


def agreement_curve(inp: QualityInputs, param: str, values: list, runs: int = 3) -> dict[str, list]:
    """Run-to-run agreement as a parameter grows, e.g. LIME's number of samples: {"x": values, "y": mean rho}."""
    ys = []
    for v in values:
        ys.append(float(np.nanmean(run_agreement(inp, runs, **{param: v}))))
    return {"x": list(values), "y": ys, "param": param}


@register
class RunAgreement(Metric):
    name = "run_agreement"
    title = "Run-to-run agreement"
    category = "stability"
    needs_stochastic = True
    reexplains = True
    description = ("Mean Spearman rank correlation between the maps of three runs with different seeds. "
                   "1: the same map every time; near 0: the map is mostly noise.")
    paper = "Zhang et al., Why Should You Trust My Explanation? Understanding Uncertainty in LIME, 2019"

    def evaluate(self, inp: QualityInputs) -> MetricResult:
        return MetricResult(run_agreement(inp))
