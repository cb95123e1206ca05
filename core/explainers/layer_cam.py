"""Layer-CAM (Jiang et al., 2021), via pytorch-grad-cam."""
from pytorch_grad_cam import LayerCAM as _LayerCAM

from core.explainers.cam import CamExplainer
from core.explainers.registry import register


@register
class LayerCAM(CamExplainer):
    name = "layer_cam"
    title = "Layer-CAM"
    description = "Activations weighted element-wise by their positive gradients; works on shallow layers too."
    paper = "Jiang et al. LayerCAM: Exploring Hierarchical Class Activation Maps for Localization. IEEE TIP 2021"
    cam_class = _LayerCAM
