"""A model that carries another library's hooks (a live pytorch-grad-cam object, as a notebook user leaves it):
the engine's Grad-CAM on it, one image and 16, beside pytorch-grad-cam's own call on the same 16.

    python -m benchmarks --methods none --foreign-hooks
"""
from __future__ import annotations

import torch

from benchmarks.common import env, median_seconds
from core import explain, explain_batch, load_model


def report(model_path: str) -> str:
    from pytorch_grad_cam import GradCAM

    model, _ = load_model(model_path)
    layer = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    cam = GradCAM(model=model, target_layers=[layer])
    x = torch.rand(16, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    cam(input_tensor=x[:1], targets=None)
    one = median_seconds(lambda: explain(model, x[0], "grad_cam"), 20)
    many = median_seconds(lambda: explain_batch(model, x, "grad_cam"), 5)
    lib = median_seconds(lambda: cam(input_tensor=x, targets=None), 5)
    return (f"**Grad-CAM on a model carrying pytorch-grad-cam's hooks** (demo model, 64 px; {env()}): one image "
            f"{one * 1000:.1f} ms, 16 images {many:.3f} s, pytorch-grad-cam's own 16 images {lib:.3f} s")
