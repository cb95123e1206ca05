"""Integrated Gradients (Sundararajan et al., 2017), via captum, with a choice of baseline."""
from __future__ import annotations

import torch
from captum.attr import IntegratedGradients as _IG

from .base import Explainer, Param, seed_param
from .baselines import baseline_param, make_baseline
from .registry import register

INTEGRATION = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")


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
        baseline_param(),
        Param("integration", "choice", "gausslegendre", "Quadrature rule", choices=INTEGRATION, label="Integration"),
        Param("internal_batch_size", "int", 64, "Steps evaluated per forward pass (memory vs speed)", 1, 512, label="Batch"),
        seed_param(),
    )

    def attribute(self, x, target, n_steps, baseline, integration, internal_batch_size, seed):
        base = make_baseline(x, baseline, seed, self.model)
        attr, delta = _IG(self.model).attribute(
            x, baselines=base, target=target, n_steps=n_steps, method=integration,
            internal_batch_size=internal_batch_size, return_convergence_delta=True,
        )
        with torch.no_grad():
            gap = float(self.model(x)[0, target] - self.model(base)[0, target])
        self.extras = {"convergence_delta": float(delta.abs().max()), "output_difference": gap}
        return attr[0]
