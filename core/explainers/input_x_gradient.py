"""Input x Gradient (Shrikumar et al., 2016), via captum."""
from captum.attr import InputXGradient as _IxG

from core.explainers.captum_gradient import CaptumGradientExplainer
from core.explainers.registry import register


@register
class InputXGradient(CaptumGradientExplainer):
    name = "input_x_gradient"
    title = "Input × Gradient"
    view = "magnitude"  # sparse pixel gradients: a signed map at tile size is nearly invisible
    description = "Element-wise product of the input and the gradient of the class score (signed)."
    paper = "Shrikumar et al. Not Just a Black Box: Learning Important Features Through Propagating Activation Differences. arXiv:1605.01713"
    captum_class = _IxG
