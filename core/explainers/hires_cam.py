"""HiRes-CAM (Draelos & Carin, 2020), via pytorch-grad-cam."""
from pytorch_grad_cam import HiResCAM as _HiResCAM

from core.explainers.cam import CamExplainer
from core.explainers.registry import register


@register
class HiResCAM(CamExplainer):
    name = "hires_cam"
    title = "HiRes-CAM"
    description = "Element-wise product of gradients and activations summed over channels (no gradient averaging)."
    paper = "Draelos, Carin. Use HiResCAM instead of Grad-CAM for faithful explanations of CNNs. arXiv:2011.08891"
    cam_class = _HiResCAM
