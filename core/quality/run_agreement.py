"""Run-to-run agreement of stochastic methods (LIME, SHAP Partition, SmoothGrad...) across seeds, and how it
changes with a parameter such as LIME's number of samples."""
from __future__ import annotations

import itertools

import numpy as np

from core.quality.base import Metric, MetricResult, QualityInputs
from core.quality.registry import register
from core.quality.ranks import rank_correlation


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
