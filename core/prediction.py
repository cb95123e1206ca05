"""The one prediction path: class probabilities for one image, a batch, or a whole dataset split.

Used by the pages, the CLI, training evaluation, the explanation engine and the metrics alike. A
prediction only runs the model forward, so it needs no lock: a shared model is never written to while
it is shared (see :mod:`core.explainers.sharing`), and many sessions predict with it concurrently.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

#: images per forward pass when predicting many
BATCH_SIZE = 256


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def as_images(images: torch.Tensor | np.ndarray, device: torch.device | None = None, *,
              single: bool = False) -> torch.Tensor:
    """A private float32 (N, C, H, W) copy of ``images`` ((C, H, W) is one image), on ``device``.

    Raises:
        ValueError: not an image or a batch of images (or, with ``single``, more than one image).
    """
    x = torch.as_tensor(images)
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if single and (x.ndim != 4 or x.shape[0] != 1):
        raise ValueError(f"explain takes one image (C, H, W) or (1, C, H, W), got shape {tuple(x.shape)}")
    if x.ndim != 4 or x.shape[0] == 0:
        raise ValueError(f"expected images (N, C, H, W) or one image (C, H, W), got shape {tuple(x.shape)}")
    return x.detach().to(device=device, dtype=torch.float32).clone()


def _ensure_eval(model: nn.Module) -> None:
    # A shared model is always in eval mode already (nothing is written then); a caller's own model fresh
    # from training is switched once.
    if model.training:
        model.eval()


def logits(model: nn.Module, x: torch.Tensor, batch_size: int = BATCH_SIZE) -> torch.Tensor:
    """Logits (N, K) for a float batch (N, C, H, W) already on the model's device."""
    _ensure_eval(model)
    with torch.inference_mode():
        return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def predict(model: nn.Module, image: torch.Tensor | np.ndarray) -> np.ndarray:
    """Class probabilities (K,) for one image (C, H, W) in [0, 1]."""
    x = as_images(image, model_device(model), single=True)
    return torch.softmax(logits(model, x), dim=1)[0].cpu().numpy()


def predict_proba(model: nn.Module, images: Any, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Class probabilities (N, K) for float images (N, C, H, W) in [0, 1], or for a dataset with a
    ``batch(indices)`` method (converted batch by batch, so a large split never sits in memory as float)."""
    _ensure_eval(model)
    device = model_device(model)
    get = images.batch if hasattr(images, "batch") else (lambda idx: torch.as_tensor(images[idx[0] : idx[-1] + 1]))
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            idx = np.arange(i, min(i + batch_size, len(images)))
            out.append(torch.softmax(model(get(idx).to(device, torch.float32)), dim=1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)
