"""Sanity check (Adebayo et al., NeurIPS 2018): cascading randomisation of the model's layers from the top.

A map that stays the same when the weights it should explain are replaced by random ones does not explain the
model. Written here because Quantus's MPRT runs the method through its own explain function per layer and
image; ours re-runs our engine, batched, on a randomised copy per block (blocks, not every convolution: 5-6
steps on our architectures), and records both the rank correlation and SSIM per step.
"""
from __future__ import annotations

import copy

import numpy as np
from torch import nn

from core.quality.base import CurveSpec, Metric, MetricResult, QualityInputs
from core.quality.registry import register
from core.quality.ranks import rank_correlation

#: a method "fails" when its maps still correlate this much with the trained model's after full randomisation
FAIL_RHO = 0.5


def blocks_top_down(model: nn.Module) -> list[str]:
    from core.modelling.architectures import Classifier, freezable_layers

    if isinstance(model, Classifier):
        return ["net." + n for n in reversed(freezable_layers(model))]
    return [n for n, m in reversed(list(model.named_children())) if any(True for _ in m.parameters())]


def randomise(module: nn.Module) -> None:
    """Re-initialise every layer of ``module`` (draws from torch's global RNG: call it seeded)."""
    for m in module.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from skimage.metrics import structural_similarity

    out = np.full(len(a), np.nan)
    for i in range(len(a)):
        x, y = np.abs(a[i]), np.abs(b[i])
        if x.max() > 0 and y.max() > 0:
            out[i] = structural_similarity(x / x.max(), y / y.max(), data_range=1.0)
    return out


@register
class Randomisation(Metric):
    name = "randomisation"
    title = "Model randomisation (rank correlation)"
    category = "sanity"
    higher_is_better = False
    reexplains = True
    description = ("Rank correlation of |map| for the trained model and for the model with its blocks randomised "
                   f"from the top down (value: all randomised). Low: the map depends on what the model learned; "
                   f"{FAIL_RHO} or more fails the check.")
    paper = "Adebayo et al., Sanity Checks for Saliency Maps, NeurIPS 2018"
    curves = tuple(CurveSpec(x="layers", y=y, title=f"Cascading randomisation: {label} with the trained model's map",
                             xtitle="randomised down to", ytitle=label)
                   for y, label in (("rank_correlation", "Spearman ρ"), ("ssim", "SSIM")))

    def evaluate(self, inp: QualityInputs) -> MetricResult:
        from core.explainers import seeding

        names = blocks_top_down(inp.model)
        seed = int(inp.params.get("seed", 0))
        rand = copy.deepcopy(inp.model).eval()
        rhos, ssims = [], []
        base = np.abs(inp.maps)
        for k, name in enumerate(names):
            with seeding.seeded(seed + k):
                randomise(rand.get_submodule(name))
            maps = inp.explain(inp.images, model=rand)
            rhos.append(rank_correlation(base, np.abs(maps)))
            ssims.append(ssim(inp.maps, maps))
            if inp.progress:
                inp.progress(k + 1, len(names))
        rho = np.stack(rhos, axis=1)  # (N, layers)
        return MetricResult(rho[:, -1], {"layers": names, "rank_correlation": rho, "ssim": np.stack(ssims, axis=1)})
