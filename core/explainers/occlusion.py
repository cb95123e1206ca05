"""Occlusion (Zeiler & Fergus, 2014), via captum."""
import torch
from captum.attr import Occlusion as _Occlusion

from ..errors import ParameterError
from .base import Explainer, Param, seed_param
from .baselines import BASELINES, make_baseline
from .registry import register


@register
class Occlusion(Explainer):
    name = "occlusion"
    title = "Occlusion"
    description = "Drop in the class score when a square patch is replaced by a baseline, slid over the image."
    paper = "Zeiler, Fergus. Visualizing and Understanding Convolutional Networks. ECCV 2014. arXiv:1311.2901"
    needs_gradients = False
    family = "Perturbation"
    takes_baseline = True
    stochastic = True  # only with the noise baseline
    params = (
        Param("window", "int", 8, "Side of the occluding square (px)", 1, 128, label="Window"),
        Param("stride", "int", 4, "Step between windows (px)", 1, 128, label="Stride"),
        Param("baseline", "choice", "blur", "What replaces the patch", choices=BASELINES, label="Baseline"),
        Param("batch_size", "int", 64, "Occluded images per forward pass", 1, 1024, label="Batch"),
        seed_param(),
    )

    def attribute(self, x, target, window, stride, baseline, batch_size, seed):
        c, h, w = x.shape[1:]
        if window > min(h, w):
            raise ParameterError(f"window {window} is larger than the {h}x{w} image")
        base = make_baseline(x, baseline, seed, self.model)
        # captum's Occlusion needs autograd bookkeeping off, not inference mode (it fails under inference_mode).
        with torch.no_grad():
            return _Occlusion(self.model).attribute(
                x, sliding_window_shapes=(c, window, window), strides=(c, stride, stride), baselines=base,
                target=target, perturbations_per_eval=batch_size)[0]
