"""Guided Backpropagation (Springenberg et al., 2015), via captum."""
from captum.attr import GuidedBackprop as _GBP

from core.explainers.captum_gradient import CaptumGradientExplainer
from core.explainers.registry import register


@register
class GuidedBackprop(CaptumGradientExplainer):
    name = "guided_backprop"
    title = "Guided Backprop"
    view = "magnitude"  # sparse pixel gradients: a signed map at tile size is nearly invisible
    description = "Gradient where every ReLU also passes back only positive gradients; sharp, edge-like maps."
    paper = "Springenberg et al. Striving for Simplicity: The All Convolutional Net. ICLR Workshop 2015. arXiv:1412.6806"
    captum_class = _GBP
    units = "gradient"
    requires = {"relu": "Guided backpropagation is defined by the ReLU's backward pass; this architecture has other non-linearities "
                        "(GELU, SiLU, attention softmax, multiplicative gates) where captum would silently pass plain "
                        "gradients"}
    shared_effects = frozenset({"hooks"})  # captum hooks every ReLU to pass back only positive gradients
