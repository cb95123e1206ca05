"""Faithfulness: does removing (or adding) the pixels a map calls important change the model's output?

Deletion and insertion (Petsiuk et al., RISE, BMVC 2018) are written here, batched: the 20-step curves of 64
images are a few forward passes of several hundred images, not 1,280 single calls (Quantus's PixelFlipping
evaluates one image and one step at a time). ROAD comes from pytorch-grad-cam.
"""
from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms.functional import gaussian_blur

from .base import Metric, MetricResult, QualityInputs, register, target_probability

REPLACEMENTS = ("blur", "mean", "zero")


def replacement(images: torch.Tensor, how: str) -> torch.Tensor:
    """What removed pixels become: a blurred copy of the image, its per-channel mean, or black."""
    if how == "blur":
        k = max(3, (images.shape[-1] // 8) | 1)
        return gaussian_blur(images, [k, k], [k / 3.0, k / 3.0])
    if how == "mean":
        return images.mean(dim=(2, 3), keepdim=True).expand_as(images)
    if how == "zero":
        return torch.zeros_like(images)
    raise ValueError(f"replacement must be one of {', '.join(REPLACEMENTS)}, got {how!r}")


def order(maps: np.ndarray) -> np.ndarray:
    """Pixel indices of each map, most important (largest signed value) first; ties in index order."""
    flat = maps.reshape(len(maps), -1)
    return np.argsort(-flat, axis=1, kind="stable")


def curves(inp: QualityInputs, insert: bool, steps: int = 20, how: str = "blur", chunk: int = 16) -> np.ndarray:
    """(N, steps + 1) target probabilities as 0, 1/steps, ..., all of the pixels are removed (deletion) or
    inserted into the replacement (insertion), most important first."""
    n, c, h, w = inp.images.shape
    ranks = order(inp.maps)
    out = np.empty((n, steps + 1))
    done = 0
    for s in range(0, n, chunk):
        x = inp.images[s:s + chunk]
        base = replacement(x, how)
        m = len(x)
        batch = torch.empty((m, steps + 1, c, h * w))
        keep = torch.zeros((m, h * w), dtype=torch.bool)  # pixels taken from the image (insertion) / replaced (deletion)
        for k in range(steps + 1):
            cut = round(k / steps * h * w)
            keep[:] = False
            rows = torch.as_tensor(ranks[s:s + m, :cut])
            keep.scatter_(1, rows, True)
            sel = keep.view(m, 1, h * w)
            src, other = (x, base) if insert else (base, x)
            batch[:, k] = torch.where(sel, src.reshape(m, c, h * w), other.reshape(m, c, h * w))
        t = np.repeat(inp.targets[s:s + m], steps + 1)

        def tick(k: int) -> None:
            nonlocal done
            done += k
            if inp.progress:
                inp.progress(done, n * (steps + 1))

        out[s:s + m] = target_probability(inp.model, batch.view(m * (steps + 1), c, h, w), t, progress=tick,
                                          cancel=inp.cancel).reshape(m, steps + 1)
    return out


def auc(y: np.ndarray) -> np.ndarray:
    """Area under curves sampled at equal steps over [0, 1] (trapezoid rule)."""
    x = np.linspace(0.0, 1.0, y.shape[1])
    return np.trapezoid(y, x, axis=1)


class _Curve(Metric):
    category = "faithfulness"
    insert = False
    steps = 20
    replace_with = "blur"

    def evaluate(self, inp: QualityInputs) -> MetricResult:
        y = curves(inp, self.insert, self.steps, self.replace_with)
        return MetricResult(auc(y), {"x": np.linspace(0, 1, self.steps + 1).tolist(), "y": y},
                            {"replacement": self.replace_with, "steps": self.steps})


@register
class Deletion(_Curve):
    name = "deletion"
    title = "Deletion AUC"
    higher_is_better = False
    description = ("Remove pixels most-important-first (replaced by a blurred copy); the area under the target "
                   "probability curve. Low: the map found what the model needs.")
    paper = "Petsiuk, Das & Saenko, RISE, BMVC 2018"


@register
class Insertion(_Curve):
    name = "insertion"
    title = "Insertion AUC"
    insert = True
    description = ("Add pixels most-important-first to a blurred copy; the area under the target probability "
                   "curve. High: the first pixels the map names are enough for the model.")
    paper = "Petsiuk, Das & Saenko, RISE, BMVC 2018"


@register
class Road(Metric):
    """pytorch-grad-cam's ROAD: removal by noisy linear imputation, which avoids the out-of-distribution
    artefacts a constant replacement creates; (LeRF - MoRF) / 2 averaged over percentiles. Its imputer draws
    from torch's global RNG, so it runs seeded with the caller's RNG state restored."""

    name = "road"
    title = "ROAD (combined)"
    category = "faithfulness"
    description = ("Remove and Debias (ROAD): impute removed pixels from their neighbours; half the difference "
                   "between removing the least and the most relevant pixels. High: faithful.")
    paper = "Rong et al., A Consistent and Efficient Evaluation Strategy for Attribution Methods, ICML 2022"
    percentiles = (20, 40, 60, 80)

    def evaluate(self, inp: QualityInputs) -> MetricResult:
        from pytorch_grad_cam.metrics.road import ROADCombined
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

        from ..explainers import seeding
        from ..prediction import model_device

        road = ROADCombined(percentiles=list(self.percentiles))
        values = []
        dev = model_device(inp.model)
        for i in range(len(inp.images)):  # the imputer solves one sparse system per image anyway
            if inp.cancel is not None and inp.cancel.cancelled:
                from ..errors import Cancelled

                raise Cancelled("quality evaluation was cancelled")
            with seeding.seeded(int(inp.params.get("seed", 0)) + i):
                v = road(inp.images[i:i + 1].to(dev), inp.maps[i:i + 1].astype(np.float32),
                         [ClassifierOutputSoftmaxTarget(int(inp.targets[i]))], inp.model)
            values.append(float(np.asarray(v).reshape(-1)[0]))
            if inp.progress:
                inp.progress(i + 1, len(inp.images))
        return MetricResult(np.asarray(values))
