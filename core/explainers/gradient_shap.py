"""GradientSHAP (Lundberg & Lee, 2017), via captum."""
import torch
from captum.attr import GradientShap as _GradientShap

from core.explainers.base import Attribution, Explainer, Param, seed_param
from core.explainers.baselines import BASELINES, describe, make_baseline
from core.explainers.registry import register


@register
class GradientShap(Explainer):
    name = "gradient_shap"
    title = "GradientSHAP"
    view = "magnitude"  # sparse pixel gradients: a signed map at tile size is nearly invisible
    description = ("Expected gradients: gradients at random points between the input (plus noise) and baselines "
                   "drawn from a set, times (input - baseline). Approximates SHAP values.")
    paper = "Lundberg, Lee. A Unified Approach to Interpreting Model Predictions. NeurIPS 2017. arXiv:1705.07874"
    takes_baseline = True
    stochastic = True
    params = (
        Param("n_samples", "int", 32, help="Random samples (gradient evaluations)", min=1, max=1024, label="Samples"),
        Param("stdev", "float", 0.05, help="Noise added to the input, in pixel units ([0, 1] images)", min=0.0, max=1.0, step=0.01, label="Noise"),
        Param("baselines", "choice", "all", help="Baseline set: one kind, or all four (black, blurred, noise, mean)",
              choices=("all", *BASELINES), label="Baselines"),
        seed_param(),
    )
    batched = False  # one baseline set per image; captum draws baselines, noise and path points for the whole batch
    shared_effects = frozenset({"global_rng"})  # ... from torch's global generator

    peak_param = "n_samples"

    @classmethod
    def peak_images(cls, params, image_shape, chunk):
        return chunk * params["n_samples"]  # captum evaluates every sample of an image in one pass

    @classmethod
    def cost(cls, params, model, image_shape):
        return params["n_samples"]

    @classmethod
    def probe_params(cls, params, units, image_shape):
        return {**params, "n_samples": int(min(1024, max(1, units)))}

    def attribute(self, x, targets, *, seeds, progress, n_samples, stdev, baselines):
        kinds = BASELINES if baselines == "all" else (baselines,)
        base = torch.cat([make_baseline(x, k, seeds, self.model) for k in kinds])
        xg = self.grad_input(x)
        attr = _GradientShap(self.model).attribute(xg, baselines=base, target=targets, n_samples=n_samples, stdevs=stdev)
        said = "; ".join(describe(k, x, self.model, seeds[0] if seeds else None).removeprefix("baseline: ") for k in kinds)
        return Attribution.with_extras(attr, baseline=f"baselines drawn from: {said}" if len(kinds) > 1 else f"baseline: {said}")
