"""SHAP GradientExplainer (expected gradients), via the ``shap`` package."""
from __future__ import annotations

import numpy as np
import shap
import torch
from torch import nn

from core.explainers.base import Attribution, Explainer, Param, seed_param
from core.explainers.baselines import make_baseline
from core.explainers.registry import register


class _TargetOutput(nn.Module):
    """The model's logit for one class, as an (N, 1) output."""

    def __init__(self, model: nn.Module, target: int) -> None:
        super().__init__()
        self.model, self.target = model, target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[:, self.target : self.target + 1]


@register
class ShapGradient(Explainer):
    name = "shap_gradient"
    title = "SHAP (Gradient)"
    view = "magnitude"  # sparse pixel gradients: a signed map at tile size is nearly invisible
    description = ("Expected gradients against a background sample of training images (shap's GradientExplainer); "
                   "without one, a synthetic background (noise, blur, mean) is used.")
    paper = "Erion et al. Improving performance of deep learning models with axiomatic attribution priors and expected gradients. Nature MI 2021. arXiv:1906.10670"
    stochastic = True
    needs_background = True
    params = (
        Param("background_size", "int", 16, help="Background images drawn", min=1, max=512, label="Background size"),
        Param("n_samples", "int", 64, help="Samples of the expectation", min=1, max=2048, label="Samples"),
        seed_param(),
    )
    batched = False  # one background draw per image
    # shap's GradientExplainer calls model.zero_grad() and draws from np.random (global)
    shared_effects = frozenset({"module_state", "global_rng"})

    @classmethod
    def cost(cls, params, model, image_shape):
        return params["n_samples"]

    @classmethod
    def probe_params(cls, params, units, image_shape):
        return {**params, "n_samples": int(min(2048, max(1, units)))}

    def attribute(self, x, targets, *, seeds, progress, background_size, n_samples):
        target, seed = int(targets[0]), seeds[0]
        if self.background is not None and len(self.background):
            g = torch.Generator().manual_seed(seed)
            idx = torch.randperm(len(self.background), generator=g)[:background_size]
            background = self.background[idx.to(self.background.device)]
            note = f"{len(background)} training images"
        else:
            kinds = ("zeros", "blur", "noise", "mean")
            background = torch.cat([make_baseline(x, kinds[i % 4], seed + i, self.model) for i in range(background_size)])
            note = f"{len(background)} synthetic images (no training sample given)"
        explainer = shap.GradientExplainer(_TargetOutput(self.model, target), background.to(x.device))
        values = explainer.shap_values(x.detach().clone(), nsamples=n_samples)
        values = np.asarray(values[0] if isinstance(values, list) else values)
        single = values.reshape(x.shape[1:] + values.shape[x.dim():]).squeeze(-1) if values.ndim > x.dim() else values[0]
        return Attribution(single[None], [{"background": note}])
