"""Shared base of the CAM family: every method is a pytorch-grad-cam class applied to one layer.

pytorch-grad-cam returns, per image, a ReLU'd map upsampled to the input and min-max scaled to
[0, 1]; that is our (non-negative) attribution. Its hooks are removed by the context manager.
"""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from ..architectures import get_layer
from .base import Explainer, Param

class _QuietTqdm:
    """Stands in for the ``tqdm`` module in pytorch-grad-cam's Score-CAM / Ablation-CAM (they draw bars on stderr)."""

    @staticmethod
    def tqdm(iterable, *args, **kwargs):
        return iterable


for _module in ("score_cam", "ablation_cam"):
    _mod = __import__(f"pytorch_grad_cam.{_module}", fromlist=["tqdm"])
    if hasattr(_mod, "tqdm"):
        _mod.tqdm = _QuietTqdm

LAYER = Param("layer", "layer", None, "Convolutional layer whose feature maps are used (default: the model card's)",
              label="Layer")


class CamExplainer(Explainer):
    cam_class: ClassVar[type]
    family = "CAM"
    needs_layer = True
    signed = False
    outlier_perc = 0.0
    params = (LAYER,)

    def cam_kwargs(self, **params: Any) -> dict[str, Any]:
        """Constructor arguments beyond model and layer (e.g. a batch size)."""
        return {}

    def configure(self, cam: Any, **params: Any) -> None:
        """Set attributes the library reads but does not take as arguments."""

    def attribute(self, x: torch.Tensor, target: int, layer: str, **params: Any):
        with self.cam_class(model=self.model, target_layers=[get_layer(self.model, layer)], **self.cam_kwargs(**params)) as cam:
            self.configure(cam, **params)
            return cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])[0]
