"""Integrated Gradients (Sundararajan et al., 2017), via captum, with a choice of baseline."""
from __future__ import annotations

import torch
from captum.attr import IntegratedGradients as _IG
from torchvision.transforms.functional import gaussian_blur

from .base import Explainer, Param
from .registry import register

BASELINES = ("zeros", "blur", "noise", "mean")


def make_baseline(x: torch.Tensor, kind: str, seed: int, mean: torch.Tensor | None = None) -> torch.Tensor:
    """A baseline image like ``x`` (1, C, H, W) in [0, 1].

    zeros: black; blur: ``x`` under a strong Gaussian blur (sigma = side / 8); noise: uniform noise
    from ``seed``; mean: the training mean colour (from the model's normalisation layer).
    """
    if kind == "zeros":
        return torch.zeros_like(x)
    if kind == "blur":
        sigma = max(x.shape[-1], x.shape[-2]) / 8
        k = int(2 * round(3 * sigma) + 1)
        k = min(k, 2 * (min(x.shape[-2:]) // 2) - 1)  # torchvision needs an odd kernel smaller than the image
        return gaussian_blur(x, [k, k], [sigma, sigma])
    if kind == "noise":
        g = torch.Generator(device="cpu").manual_seed(seed)
        return torch.rand(x.shape, generator=g).to(x.device, x.dtype)
    if kind == "mean":
        if mean is None:
            raise ValueError("the mean baseline needs the model's normalisation mean")
        return mean.to(x.device, x.dtype).view(1, -1, 1, 1).expand_as(x).clone()
    raise ValueError(f"unknown baseline {kind!r}")


@register
class IntegratedGradients(Explainer):
    name = "integrated_gradients"
    title = "Integrated Gradients"
    description = "Path integral of gradients from a baseline image to the input; sums to f(x) - f(baseline)."
    paper = "Sundararajan, Taly, Yan. Axiomatic Attribution for Deep Networks. ICML 2017. arXiv:1703.01365"
    takes_baseline = True
    stochastic = True  # only with the noise baseline
    params = (
        Param("n_steps", "int", 64, "Integration steps (more = closer to exact completeness)", 4, 512, 4, label="Steps"),
        Param("baseline", "choice", "zeros", "Reference image the path starts from", choices=BASELINES, label="Baseline"),
        Param("integration", "choice", "gausslegendre", "Quadrature rule",
              choices=("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle"), label="Integration"),
        Param("internal_batch_size", "int", 32, "Steps evaluated per forward pass (memory vs speed)", 1, 512, label="Batch"),
        Param("seed", "int", 0, "Seed of the noise baseline", 0, 2**31 - 1, label="Seed"),
    )

    def attribute(self, x, target, n_steps, baseline, integration, internal_batch_size, seed):
        mean = getattr(getattr(self.model, "normalize", None), "mean", None)
        base = make_baseline(x, baseline, seed, mean)
        attr, delta = _IG(self.model).attribute(
            x, baselines=base, target=target, n_steps=n_steps, method=integration,
            internal_batch_size=internal_batch_size, return_convergence_delta=True,
        )
        with torch.no_grad():
            gap = float(self.model(x)[0, target] - self.model(base)[0, target])
        self.extras = {"convergence_delta": float(delta.abs().max()), "output_difference": gap}
        return attr[0]
