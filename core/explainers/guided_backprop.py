"""Guided Backpropagation (Springenberg et al., 2015), via captum."""
from captum.attr import GuidedBackprop as _GBP

from .base import Explainer
from .registry import register


@register
class GuidedBackprop(Explainer):
    name = "guided_backprop"
    title = "Guided Backprop"
    description = "Gradient where every ReLU also passes back only positive gradients; sharp, edge-like maps."
    paper = "Springenberg et al. Striving for Simplicity: The All Convolutional Net. ICLR Workshop 2015. arXiv:1412.6806"

    def attribute(self, x, target):
        return _GBP(self.model).attribute(self.grad_input(x), target=target)[0]
