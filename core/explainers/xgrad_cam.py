"""XGrad-CAM (Fu et al., 2020), via pytorch-grad-cam."""
from pytorch_grad_cam import XGradCAM as _XGradCAM

from core.explainers.cam import CamExplainer
from core.explainers.registry import register


@register
class XGradCAM(CamExplainer):
    name = "xgrad_cam"
    title = "XGrad-CAM"
    description = "Grad-CAM with gradients weighted by normalised activations (axiom-based sensitivity and conservation)."
    paper = "Fu et al. Axiom-based Grad-CAM: Towards Accurate Visualization and Explanation of CNNs. BMVC 2020. arXiv:2008.02312"
    cam_class = _XGradCAM
