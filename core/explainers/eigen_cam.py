"""Eigen-CAM (Muhammad & Yeasin, 2020), via pytorch-grad-cam."""
from pytorch_grad_cam import EigenCAM as _EigenCAM

from core.explainers.cam import CamExplainer
from core.explainers.registry import register


@register
class EigenCAM(CamExplainer):
    name = "eigen_cam"
    title = "Eigen-CAM"
    class_specific = False  # the first principal component of the activations: the target plays no part
    description = ("First principal component of the layer's activations. Class-agnostic: the same map for every "
                   "target, and its sign is arbitrary.")
    paper = "Muhammad, Yeasin. Eigen-CAM: Class Activation Map using Principal Components. IJCNN 2020. arXiv:2008.00299"
    needs_gradients = False
    cam_class = _EigenCAM
