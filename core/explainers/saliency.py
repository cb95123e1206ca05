"""Saliency: the absolute input gradient (Simonyan et al., 2014), via captum."""
from captum.attr import Saliency as _Saliency

from core.explainers.captum_gradient import CaptumGradientExplainer
from core.explainers.registry import register


@register
class Saliency(CaptumGradientExplainer):
    name = "saliency"
    title = "Saliency"
    description = "Absolute gradient of the class score with respect to each pixel (max over colour channels)."
    paper = "Simonyan, Vedaldi, Zisserman. Deep Inside Convolutional Networks. ICLR Workshop 2014. arXiv:1312.6034"
    signed = False
    units = "gradient"
    channel_reduction = "max_abs"
    captum_class = _Saliency
    attribute_kwargs = {"abs": True}
