"""DeepLIFT (Shrikumar et al., 2017), via captum (Rescale rule)."""
from captum.attr import DeepLift as _DeepLift

from core.explainers.base import Attribution, Explainer, seed_param
from core.explainers.baselines import baseline_param, describe, make_baseline
from core.explainers.registry import register


@register
class DeepLift(Explainer):
    name = "deeplift"
    title = "DeepLIFT"
    view = "magnitude"  # sparse pixel gradients: a signed map at tile size is nearly invisible
    description = ("Contributions of each pixel to the difference between the output and the output on a baseline "
                   "(Rescale rule); sums to f(x) - f(baseline). Needs separate, non-inplace ReLU modules: our CNNs "
                   "have them.")
    paper = "Shrikumar, Greenside, Kundaje. Learning Important Features Through Propagating Activation Differences. ICML 2017. arXiv:1704.02685"
    takes_baseline = True
    stochastic = True  # only with the noise baseline
    params = (baseline_param(), seed_param())
    requires = {"relu": "DeepLIFT's Rescale rule is applied by captum to separate, non-inplace ReLU modules; this "
                        "architecture's GELU / SiLU, attention softmax or multiplicative gates would get plain gradients "
                        "instead, and the map would no longer sum to f(x) - f(baseline)"}
    shared_effects = frozenset({"hooks"})  # captum hooks every non-linearity to apply the Rescale rule

    @classmethod
    def cost(cls, params, model, image_shape):
        return 2  # the input and its baseline

    def attribute(self, x, targets, *, seeds, progress, baseline):
        base = make_baseline(x, baseline, seeds, self.model)
        attr, delta = _DeepLift(self.model).attribute(self.grad_input(x), baselines=base,
                                                      target=targets, return_convergence_delta=True)
        said = [describe(baseline, x[i:i + 1], self.model, seeds[i] if seeds else None) for i in range(len(x))]
        return Attribution.with_extras(attr, convergence_delta=delta.abs(), baseline=said)
