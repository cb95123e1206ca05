"""Grad-CAM++ (Chattopadhyay et al., 2018), via pytorch-grad-cam."""
from pytorch_grad_cam import GradCAMPlusPlus

from core.explainers.cam import CamExplainer
from core.explainers.registry import register


@register
class GradCAMPlusPlusExplainer(CamExplainer):
    name = "grad_cam_plusplus"
    title = "Grad-CAM++"
    description = "Grad-CAM with pixel-wise weighting of positive gradients; better for several instances of a class."
    paper = "Chattopadhay et al. Grad-CAM++: Improved Visual Explanations for Deep Convolutional Networks. WACV 2018. arXiv:1710.11063"
    cam_class = GradCAMPlusPlus
