"""Shared by deletion and insertion (Petsiuk et al., RISE, BMVC 2018): the replacement of removed pixels, the pixel
order of a map, the batched curves and their area.

Written here, batched: the 20-step curves of 64 images are a few forward passes of several hundred images, not
1,280 single calls (Quantus's PixelFlipping evaluates one image and one step at a time).
"""
from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms.functional import gaussian_blur

from core.params import Param
from core.quality.base import Metric, MetricResult, QualityInputs, target_probability

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


class CurveMetric(Metric):
    """Deletion or insertion: the curve per image and its area; ``replacement`` is a metric parameter."""

    category = "faithfulness"
    insert = False
    steps = 20
    params = (Param("replacement", "choice", REPLACEMENTS[0], choices=REPLACEMENTS, label="Removed pixels become",
                    help="What replaces removed pixels: a blurred copy, the image's mean colour, or black"),)

    def evaluate(self, inp: QualityInputs) -> MetricResult:
        how = self.settings["replacement"]
        y = curves(inp, self.insert, self.steps, how)
        return MetricResult(auc(y), {"x": np.linspace(0, 1, self.steps + 1).tolist(), "y": y},
                            {"replacement": how, "steps": self.steps})
