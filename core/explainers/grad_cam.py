"""Grad-CAM (Selvaraju et al., 2017), via pytorch-grad-cam."""
from pytorch_grad_cam import GradCAM as _GradCAM

from core.explainers.cam import CamExplainer
from core.explainers.registry import register


@register
class GradCAM(CamExplainer):
    name = "grad_cam"
    title = "Grad-CAM"
    description = ("Feature maps of a convolutional layer weighted by their average gradient, ReLU'd, "
                   "upsampled to the input and scaled to [0, 1] per image (pytorch-grad-cam's convention).")
    paper = "Selvaraju et al. Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization. ICCV 2017. arXiv:1610.02391"
    cam_class = _GradCAM
