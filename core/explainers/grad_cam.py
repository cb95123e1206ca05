"""Grad-CAM (Selvaraju et al., 2017), via pytorch-grad-cam."""
from __future__ import annotations

from pytorch_grad_cam import GradCAM as _GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from ..architectures import get_layer
from .base import Explainer, Param
from .registry import register


@register
class GradCAM(Explainer):
    name = "grad_cam"
    title = "Grad-CAM"
    description = ("Feature maps of a convolutional layer weighted by their average gradient, ReLU'd, "
                   "upsampled to the input and scaled to [0, 1] per image (pytorch-grad-cam's convention).")
    paper = "Selvaraju et al. Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization. ICCV 2017. arXiv:1610.02391"
    needs_layer = True
    signed = False
    outlier_perc = 0.0
    params = (Param("layer", "layer", None, "Convolutional layer whose feature maps are weighted (default: the model card's)", label="Layer"),)

    def attribute(self, x, target, layer):
        # The context manager removes the hooks pytorch-grad-cam adds, even on error.
        with _GradCAM(model=self.model, target_layers=[get_layer(self.model, layer)]) as cam:
            return cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])[0]
