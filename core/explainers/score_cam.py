"""Score-CAM (Wang et al., 2020), via pytorch-grad-cam."""
from pytorch_grad_cam import ScoreCAM as _ScoreCAM

from core.explainers.base import Param
from core.explainers.cam import LAYER, CamExplainer
from core.explainers.registry import register


@register
class ScoreCAM(CamExplainer):
    name = "score_cam"
    title = "Score-CAM"
    description = "Each feature map, upsampled, masks the input; its weight is the class score of the masked image. Gradient-free."
    paper = "Wang et al. Score-CAM: Score-Weighted Visual Explanations for CNNs. CVPR Workshops 2020. arXiv:1910.01279"
    needs_gradients = False
    scores_each_channel = True
    cam_class = _ScoreCAM
    params = (LAYER, Param("batch_size", "int", 64, help="Masked images per forward pass", min=1, max=1024, label="Batch size"))

    peak_param = "batch_size"

    @classmethod
    def peak_images(cls, params, image_shape, chunk):
        return params["batch_size"]  # perturbed copies per forward pass

    def configure(self, cam, batch_size):
        cam.batch_size = batch_size  # pytorch-grad-cam reads this attribute (default 16)

