"""Integrated Gradients (Sundararajan et al., 2017), via captum, with a choice of baseline."""
from __future__ import annotations

import numpy as np
import torch
from captum.attr import IntegratedGradients as _IG

from core.explainers.base import Attribution, Explainer, Param, seed_param
from core.explainers.baselines import baseline_param, describe, make_baseline
from core.explainers.registry import register

#: input values per forward pass when ``internal_batch_size`` is 0 (auto): 64 images of 3 x 64 x 64
AUTO_BATCH_VALUES = 64 * 3 * 64 * 64
INTEGRATION = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")


@register
class IntegratedGradients(Explainer):
    name = "integrated_gradients"
    title = "Integrated Gradients"
    view = "magnitude"  # sparse pixel gradients: a signed map at tile size is nearly invisible
    description = "Path integral of gradients from a baseline image to the input; sums to f(x) - f(baseline)."
    paper = "Sundararajan, Taly, Yan. Axiomatic Attribution for Deep Networks. ICML 2017. arXiv:1703.01365"
    takes_baseline = True
    stochastic = True  # only with the noise baseline
    params = (
        Param("n_steps", "int", 64, help="Integration steps (more = closer to exact completeness)", min=4, max=512, step=4, label="Steps"),
        baseline_param(),
        Param("integration", "choice", "gausslegendre", help="Quadrature rule", choices=INTEGRATION, label="Integration"),
        Param("internal_batch_size", "int", 0, help="Path points per forward pass (memory vs speed); 0 = auto, about "
              f"{AUTO_BATCH_VALUES:,} input values per pass (64 images at 64 px RGB, 5 at 224 px)", min=0, max=1024, label="Batch"),
        seed_param(),
    )

    @staticmethod
    def points_per_pass(internal_batch_size: int, image_shape: tuple[int, ...]) -> int:
        """The resolved ``internal_batch_size``: ``auto`` bounds the memory of one pass by the input's size."""
        if internal_batch_size:
            return internal_batch_size
        return int(max(1, min(256, AUTO_BATCH_VALUES // int(np.prod(image_shape)))))

    @classmethod
    def chunk_for(cls, params, image_shape):
        # captum splits (images x steps) into passes of at most internal_batch_size points only while there are
        # no more images than that; a larger chunk would put all its images into every pass.
        return cls.points_per_pass(params["internal_batch_size"], image_shape)

    peak_param = "internal_batch_size"

    @classmethod
    def peak_images(cls, params, image_shape, chunk):
        return max(chunk, cls.points_per_pass(params["internal_batch_size"], image_shape))

    @classmethod
    def cost(cls, params, model, image_shape):
        return params["n_steps"] + 2  # the path, and the input and baseline for the output difference

    @classmethod
    def probe_params(cls, params, units, image_shape):
        return {**params, "n_steps": int(min(512, max(4, round((units - 2) / 4) * 4)))}

    def attribute(self, x, targets, *, seeds, progress, n_steps, baseline, integration, internal_batch_size):
        base = make_baseline(x, baseline, seeds, self.model)
        attr, delta = _IG(self.model).attribute(
            x, baselines=base, target=targets, n_steps=n_steps, method=integration,
            internal_batch_size=max(len(x), self.points_per_pass(internal_batch_size, tuple(x.shape[1:]))),
            return_convergence_delta=True,
        )
        with torch.no_grad():
            rows = torch.arange(len(x), device=x.device)
            gap = self.model(x)[rows, targets] - self.model(base)[rows, targets]
        said = [describe(baseline, x[i:i + 1], self.model, seeds[i] if seeds else None) for i in range(len(x))]
        return Attribution.with_extras(attr, convergence_delta=delta.abs(), output_difference=gap, baseline=said)
