"""Guided Grad-CAM (Selvaraju et al., 2017), via captum."""
from captum.attr import GuidedGradCam as _GGC

from core.modelling.architectures import get_layer
from core.explainers.base import Explainer
from core.explainers.cam import LAYER
from core.explainers.registry import register


@register
class GuidedGradCAM(Explainer):
    name = "guided_grad_cam"
    title = "Guided Grad-CAM"
    view = "magnitude"  # sparse pixel gradients: a signed map at tile size is nearly invisible
    description = "Guided Backprop multiplied element-wise by the upsampled Grad-CAM map: sharp and class-specific."
    paper = "Selvaraju et al. Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization. ICCV 2017. arXiv:1610.02391"
    needs_layer = True
    params = (LAYER,)
    units = "gradient"  # guided gradients times a [0, 1] CAM
    requires = {"relu": "Its guided-backpropagation factor is defined by the ReLU's backward pass; this architecture has other non-linearities "
                        "(GELU, SiLU, attention softmax, multiplicative gates) where captum would silently pass plain "
                        "gradients"}
    shared_effects = frozenset({"hooks"})  # ReLU backward hooks (guided backprop) and a layer hook (Grad-CAM)

    def attribute(self, x, targets, *, seeds, progress, layer):
        ggc = _GGC(self.model, get_layer(self.model, layer))
        return ggc.attribute(self.grad_input(x), target=targets, interpolate_mode="bilinear")
