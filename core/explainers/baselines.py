"""Baseline (reference) images shared by the methods that take one."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from core.explainers.base import Param

BASELINES = ("zeros", "blur", "noise", "mean")


def baseline_param(default: str = "zeros") -> Param:
    return Param("baseline", "choice", default, help="Reference image: black, strongly blurred input, uniform noise "
                 "(seeded), or the training mean colour", choices=BASELINES, label="Baseline")


def make_baseline(x: torch.Tensor, kind: str, seeds: int | Sequence[int] = 0, model: nn.Module | None = None) -> torch.Tensor:
    """A baseline image for each image of ``x`` (B, C, H, W) in [0, 1].

    zeros: black; blur: each image under a strong Gaussian blur (sigma = side / 8); noise: uniform noise,
    image ``i`` from its own seed ``seeds[i]`` (an int ``s`` means ``s + i``), so an image gets the same
    noise in a batch as alone; mean: the training mean colour (from the model's normalisation layer).
    """
    if kind == "zeros":
        return torch.zeros_like(x)
    if kind == "blur":
        sigma = max(x.shape[-1], x.shape[-2]) / 8
        k = int(2 * round(3 * sigma) + 1)
        k = min(k, 2 * ((min(x.shape[-2:]) - 1) // 2) + 1)  # torchvision needs an odd kernel no larger than the image
        return gaussian_blur(x, [k, k], [sigma, sigma])
    if kind == "noise":
        if isinstance(seeds, int):
            seeds = [seeds + i for i in range(len(x))]
        if len(seeds) != len(x):
            raise ValueError(f"{len(seeds)} seeds for {len(x)} images")
        return torch.cat([torch.rand((1, *x.shape[1:]), generator=torch.Generator(device="cpu").manual_seed(int(s)))
                          for s in seeds]).to(x.device, x.dtype)
    if kind == "mean":
        mean = getattr(getattr(model, "normalize", None), "mean", None)
        if mean is None:  # a model without our Normalize layer: each image's own mean colour
            return x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone()
        return mean.to(x.device, x.dtype).reshape(1, -1, 1, 1).expand_as(x).clone()
    raise ValueError(f"unknown baseline {kind!r}")


def _received(model: nn.Module | None, base: torch.Tensor) -> list[float] | None:
    """A constant baseline as the model itself receives it (after its own normalisation, channel order, layout),
    one value per channel; ``None`` for a model whose inputs are its own (no preprocessing of ours)."""
    if model is None:
        return None
    if hasattr(model, "model_input"):  # a model made elsewhere: its card's scale, channel order and layout
        inner = model.model_input(base[:1])
        values = inner[0, 0, 0, :] if getattr(model, "nhwc", False) else inner[0, :, 0, 0]
    elif getattr(model, "normalize", None) is not None:
        values = model.normalize(base[:1])[0, :, 0, 0]
    else:
        return None
    return [float(v) for v in values]


def describe(kind: str, x: torch.Tensor, model: nn.Module | None = None, seed: int | None = None) -> str:
    """Which baseline a map was computed against, in pixels ([0, 1]) and as the model itself receives it, so that a
    captum call on the model's own inputs (``baselines=``) reproduces it. ``x``: one image (1, C, H, W)."""
    if getattr(model, "input_range", (0.0, 1.0)) is None:  # a module given its inputs already preprocessed
        pixels = {"zeros": "zeros (captum's default baseline)", "mean": "each image's own mean colour",
                  "blur": "the image under a strong Gaussian blur (sigma = side / 8)",
                  "noise": f"uniform noise in [0, 1] (seed {seed})"}[kind]
        return f"baseline: {pixels}, in the module's own input space"
    base = make_baseline(x[:1], kind, 0 if seed is None else seed, model)
    received = _received(model, base) if kind in ("zeros", "mean") else None
    pixels = {"zeros": "black (every pixel 0 of [0, 1])",
              "mean": "the training mean colour (" + ", ".join(f"{float(v):.3f}" for v in base[0, :, 0, 0]) + " of [0, 1])",
              "blur": "the image under a strong Gaussian blur (sigma = side / 8)",
              "noise": f"uniform noise in [0, 1] (seed {seed})"}[kind]
    if received is None:
        return f"baseline: {pixels}; the model receives it through its own normalisation"
    return f"baseline: {pixels}; the model itself receives (" + ", ".join(f"{v:.3f}" for v in received) + ") per channel"
