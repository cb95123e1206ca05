"""Occlusion (Zeiler & Fergus, 2014), via captum."""
import math

import torch
from captum.attr import Occlusion as _Occlusion

from core.errors import ParameterError
from core.explainers.base import Attribution, Explainer, Param, seed_param
from core.explainers.baselines import BASELINES, make_baseline
from core.explainers.registry import register
from core.modelling.inference import describe, forward_logits


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
        Param("window", "int", 8, help="Side of the occluding square (px)", min=1, max=128, label="Window"),
        Param("stride", "int", 4, help="Step between windows (px)", min=1, max=128, label="Stride"),
        Param("baseline", "choice", "blur", help="What replaces the patch", choices=BASELINES, label="Baseline"),
        Param("batch_size", "int", 64, help="Occluded images per forward pass", min=1, max=1024, label="Batch"),
        seed_param(),
    )

    # not a per-pixel contribution to the logit (as Integrated Gradients' is, summing to f(x) - f(baseline)): each
    # pixel holds the logit's drop when a whole window around it is hidden, so it is many times larger, and a scale
    # shared with a per-pixel method turned that method's maps black
    units = "logit drop per window"
    chunk_size = 16

    peak_param = "batch_size"

    @classmethod
    def peak_images(cls, params, image_shape, chunk):
        return params["batch_size"]  # perturbed copies per forward pass

    @classmethod
    def cost(cls, params, model, image_shape):
        _, h, w = image_shape
        win, step = params["window"], params["stride"]
        if win > min(h, w):
            return 1
        return ((h - win) // step + 1) * ((w - win) // step + 1) + 1

    passes = "fast"  # the occluded copies go through the fast inference path

    @classmethod
    def probe_params(cls, params, units, image_shape):
        # the same window at a stride that gives about ``units`` windows (each is one model image at any stride), at
        # most the window (no pixel left out)
        _, h, w = image_shape
        side = max(2.0, (max(units, 2) - 1) ** 0.5)
        stride = math.ceil((min(h, w) - params["window"]) / (side - 1)) if params["window"] < min(h, w) else 1
        return {**params, "stride": int(min(params["window"], max(1, stride)))}

    def attribute(self, x, targets, *, seeds, progress, window, stride, baseline, batch_size):
        c, h, w = x.shape[1:]
        if window > min(h, w):
            raise ParameterError(f"window {window} is larger than the {h}x{w} image")
        if stride > window:  # captum asserts this; pixels between windows would get no attribution
            raise ParameterError(f"stride {stride} is larger than the window {window}: some pixels would never be occluded")
        base = make_baseline(x, baseline, seeds, self.model)
        model = self.model

        def forward(inputs: torch.Tensor) -> torch.Tensor:  # the fast inference path (forward only)
            return forward_logits(model, inputs, batch_size=batch_size)

        # captum evaluates perturbations_per_eval occlusions of every image of the chunk per pass (windows batched
        # across the image): keep the pass at about batch_size images whatever the chunk. It fails under
        # inference_mode: no_grad instead.
        with torch.no_grad():
            maps = _Occlusion(forward).attribute(
                x, sliding_window_shapes=(c, window, window), strides=(c, stride, stride), baselines=base,
                target=targets, perturbations_per_eval=max(1, batch_size // len(x)))
        backend = describe(model, (c, h, w))["backend"]
        return Attribution(maps, [{"inference": backend} for _ in range(len(x))])
