"""Ablation-CAM (Desai & Ramaswamy, 2020), via pytorch-grad-cam."""
from pytorch_grad_cam import AblationCAM as _AblationCAM

from core.explainers.base import Param
from core.explainers.cam import LAYER, CamExplainer
from core.explainers.registry import register


@register
class AblationCAM(CamExplainer):
    name = "ablation_cam"
    title = "Ablation-CAM"
    description = "Weight of each feature map = drop in class score when that map is zeroed. Gradient-free."
    paper = "Desai, Ramaswamy. Ablation-CAM: Visual Explanations for Deep Convolutional Network via Gradient-free Localization. WACV 2020"
    needs_gradients = False
    scores_each_channel = True
    cam_class = _AblationCAM
    requires = {"swappable": "Ablation-CAM swaps the layer for one that zeroes its feature maps in turn; this model's "
                             "layers are read where they are computed (a TorchScript file), not modules that can be "
                             "swapped"}
    params = (LAYER, Param("batch_size", "int", 64, help="Ablated copies per forward pass", min=1, max=1024, label="Batch size"))

    peak_param = "batch_size"

    @classmethod
    def peak_images(cls, params, image_shape, chunk):
        return params["batch_size"]  # perturbed copies per forward pass

    def cam_kwargs(self, batch_size):
        if self.tokens:  # ablates token channels (skipping the class token) instead of (C, H, W) maps
            from pytorch_grad_cam.ablation_layer import AblationLayerVit

            return {"batch_size": batch_size, "ablation_layer": AblationLayerVit()}
        return {"batch_size": batch_size}

