"""The one prediction path: class probabilities for one image, a batch, or a whole dataset split.

Used by the pages, the CLI, training evaluation, the explanation engine and the metrics alike. A
prediction only runs the model forward, so it needs no lock: a shared model is never written to while
it is shared (see :mod:`core.modelling.sharing`), and many sessions predict with it concurrently.
"""
from __future__ import annotations

import itertools

from typing import Any

import numpy as np
import torch
from torch import nn

from core.errors import ImageError

#: images per forward pass when predicting many
BATCH_SIZE = 256


def model_device(model: nn.Module) -> torch.device:
    for t in itertools.chain(model.parameters(), model.buffers()):
        return t.device
    return torch.device("cpu")  # a model without parameters (e.g. hand-built for a test) runs where its input is


def value_range(model: nn.Module) -> tuple[float, float] | None:
    """The values a model's images take: [0, 1] for every model of this project (it normalises inside); ``None`` (any
    finite values) for a module given as it is, whose inputs are already preprocessed (``input_range``)."""
    return getattr(model, "input_range", (0.0, 1.0))


def expected_channels(model: nn.Module) -> int | None:
    """The channel count the model takes: its ``Normalize`` layer's, else its first convolution's."""
    mean = getattr(getattr(model, "normalize", None), "mean", None)
    if mean is not None:
        return int(torch.as_tensor(mean).numel())
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return int(m.in_channels)
    return None


#: values this far outside [0, 1] are refused (interpolation and float noise stay within it)
RANGE_TOLERANCE = 1e-3


def as_images(images: torch.Tensor | np.ndarray, device: torch.device | None = None, *,
              single: bool = False, channels: int | None = None,
              value_range: tuple[float, float] | None = (0.0, 1.0)) -> torch.Tensor:
    """A private float32 (N, C, H, W) copy of ``images`` ((C, H, W) is one image), on ``device``, checked.

    uint8 images are converted from 0..255 (unambiguous); anything else must already be float in [0, 1]
    (``value_range``; ``None`` for a model that takes its inputs already preprocessed: any finite values).

    Raises:
        ImageError (a ValueError): not an image or a batch of images (or, with ``single``, more than one
        image); channels-last layout; another channel count than ``channels``; NaN or inf; values outside
        [0, 1] (e.g. 0..255 floats).
    """
    arr = images.detach() if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    scale = 255.0 if arr.dtype == torch.uint8 else 1.0
    x = arr
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if single and (x.ndim != 4 or x.shape[0] != 1):
        raise ImageError(f"expected one image (C, H, W) or (1, C, H, W), got shape {tuple(arr.shape)}")
    if x.ndim != 4 or x.shape[0] == 0:
        raise ImageError(f"expected images (N, C, H, W) or one image (C, H, W), got shape {tuple(arr.shape)}")
    if x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        raise ImageError(f"images of shape {tuple(arr.shape)} look channels-last (N, H, W, C); pass (N, C, H, W), "
                         "e.g. x.permute(0, 3, 1, 2)")
    if channels is not None and x.shape[1] != channels:
        raise ImageError(f"the model takes {channels}-channel images, got {x.shape[1]} channel(s): convert the image "
                         f"({'to grayscale' if channels == 1 else 'to RGB'}) first")
    x = x.to(device=device, dtype=torch.float32) / (scale if value_range is not None else 1.0)
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise ImageError(f"the images contain {bad} non-finite values (NaN or inf)")
    lo, hi = float(x.min()), float(x.max())
    if value_range is not None and (lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE):
        hint = "; divide by 255" if hi <= 255 and lo >= 0 else ""
        raise ImageError(f"image values must be in [0, 1], got [{lo:.4g}, {hi:.4g}]{hint}")
    return x  # a new tensor (the division above), never the caller's


def _ensure_eval(model: nn.Module) -> None:
    # A shared model is always in eval mode already (nothing is written then); a caller's own model fresh
    # from training is switched once.
    if model.training:
        model.eval()


_SIZE_WORDS = ("size", "shape", "height", "width", "kernel", "dimension")


def forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model(x)``; an image size the model cannot take (too small for its pooling, or not the size a ViT
    needs) is an :class:`ImageError` that says so, instead of torch's error from deep inside the model."""
    try:
        return model(x)
    except (RuntimeError, AssertionError, ValueError) as exc:
        if any(w in str(exc).lower() for w in _SIZE_WORDS):
            raise ImageError(f"the model cannot take images of {x.shape[-2]}x{x.shape[-1]} px ({exc}); resize them "
                             "to the size it was trained at (its model card's input_size)") from exc
        raise


def logits(model: nn.Module, x: torch.Tensor, batch_size: int = BATCH_SIZE) -> torch.Tensor:
    """Logits (N, K) for a float batch (N, C, H, W) already on the model's device."""
    _ensure_eval(model)
    with torch.inference_mode():
        return torch.cat([forward(model, x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def predict(model: nn.Module, image: torch.Tensor | np.ndarray) -> np.ndarray:
    """Class probabilities (K,) for one image (C, H, W) in [0, 1]."""
    x = as_images(image, model_device(model), single=True, channels=expected_channels(model))
    return torch.softmax(logits(model, x), dim=1)[0].cpu().numpy()


def predict_proba(model: nn.Module, images: Any, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Class probabilities (N, K) for float images (N, C, H, W) in [0, 1], or for a dataset with a
    ``batch(indices)`` method (converted batch by batch, so a large split never sits in memory as float)."""
    _ensure_eval(model)
    device = model_device(model)
    if not hasattr(images, "batch"):
        images = as_images(images, device, channels=expected_channels(model))
    get = images.batch if hasattr(images, "batch") else (lambda idx: images[idx[0] : idx[-1] + 1])
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            idx = np.arange(i, min(i + batch_size, len(images)))
            out.append(torch.softmax(forward(model, get(idx).to(device, torch.float32)), dim=1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)
