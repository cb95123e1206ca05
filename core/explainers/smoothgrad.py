"""SmoothGrad and SmoothGrad² (Smilkov et al., 2017) over any gradient method, via captum's NoiseTunnel."""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from captum.attr import DeepLift, GuidedBackprop, InputXGradient, IntegratedGradients, NoiseTunnel, Saliency

from core.explainers.base import Explainer, Param, seed_param
from core.explainers.registry import register

#: base method -> (captum class, extra attribute() kwargs, signed, channel reduction)
BASES: dict[str, tuple[type, dict[str, Any], bool, str]] = {
    "saliency": (Saliency, {"abs": True}, False, "max_abs"),
    "input_x_gradient": (InputXGradient, {}, True, "sum"),
    "guided_backprop": (GuidedBackprop, {}, True, "sum"),
    "integrated_gradients": (IntegratedGradients, {"n_steps": 16, "internal_batch_size": 64}, True, "sum"),
    "deeplift": (DeepLift, {}, True, "sum"),
}
#: bases that take a baseline: given the black image as a tensor, exactly as the standalone methods get it
#: (captum's IG computes a scalar 0 baseline's path slightly differently, ~1e-6)
WITH_BASELINE = {"integrated_gradients", "deeplift"}


class _NoiseTunnelExplainer(Explainer):
    nt_type: ClassVar[str]
    stochastic = True
    params = (
        Param("base", "choice", "saliency", help="Gradient method averaged over noisy copies (IG: 16 steps; IG and DeepLIFT: black baseline)",
              choices=tuple(BASES), label="Base method"),
        Param("n_samples", "int", 32, help="Noisy copies averaged", min=1, max=512, label="Samples"),
        Param("noise_level", "float", 0.15, help="Noise standard deviation as a fraction of the pixel range [0, 1]",
              min=0.0, max=1.0, step=0.01, label="Noise level"),
        Param("batch_size", "int", 32, help="Noisy copies per forward/backward pass", min=1, max=512, label="Batch"),
        seed_param(),
    )

    batched = False  # captum's NoiseTunnel draws the noise of a whole batch at once from the global RNG

    peak_param = "batch_size"

    @classmethod
    def effects(cls, params):
        hooks = {"hooks"} if params["base"] in ("guided_backprop", "deeplift") else set()
        return frozenset({"global_rng", *hooks})  # NoiseTunnel: torch.normal on the global generator

    @classmethod
    def units_for(cls, params):
        if cls.nt_type == "smoothgrad_sq":
            return "squared"
        return "gradient" if params["base"] in ("saliency", "guided_backprop") else "logit"

    @classmethod
    def cost(cls, params, model, image_shape):
        return params["n_samples"] * (BASES[params["base"]][1].get("n_steps", 1))

    @classmethod
    def probe_params(cls, params, units, image_shape):
        return {**params, "n_samples": int(min(512, max(1, units // BASES[params["base"]][1].get("n_steps", 1))))}

    @classmethod
    def peak_images(cls, params, image_shape, chunk):
        copies = chunk * min(params["n_samples"], params["batch_size"])  # noisy copies per pass
        return max(copies, BASES[params["base"]][1].get("internal_batch_size", 0))

    @classmethod
    def signed_for(cls, params):
        return BASES[params["base"]][2] and cls.nt_type == "smoothgrad"  # the squared variant: never negative

    @classmethod
    def reduction_for(cls, params):
        reduction = BASES[params["base"]][3]
        return reduction if cls.signed_for(params) or reduction == "max_abs" else "sum"

    def attribute(self, x, targets, *, seeds, progress, base, n_samples, noise_level, batch_size):
        cls, kwargs, _, _ = BASES[base]
        nt = NoiseTunnel(cls(self.model))
        xg = self.grad_input(x)
        if base in WITH_BASELINE:
            kwargs = {**kwargs, "baselines": torch.zeros_like(x)}
        return nt.attribute(xg, nt_type=self.nt_type, nt_samples=n_samples, nt_samples_batch_size=batch_size,
                            stdevs=noise_level, target=targets, **kwargs)


@register
class SmoothGrad(_NoiseTunnelExplainer):
    name = "smoothgrad"
    title = "SmoothGrad"
    view = "magnitude"  # sparse pixel gradients: a signed map at tile size is nearly invisible
    description = "Average of a gradient method's maps over noisy copies of the input: less visual noise."
    paper = "Smilkov et al. SmoothGrad: removing noise by adding noise. arXiv:1706.03825"
    nt_type = "smoothgrad"


@register
class SmoothGradSquared(_NoiseTunnelExplainer):
    name = "smoothgrad_sq"
    title = "SmoothGrad²"
    description = "Average of the squared maps over noisy copies: emphasises consistently important pixels."
    paper = "Hooker et al. A Benchmark for Interpretability Methods in Deep Neural Networks. NeurIPS 2019. arXiv:1806.10758"
    nt_type = "smoothgrad_sq"
    signed = False
