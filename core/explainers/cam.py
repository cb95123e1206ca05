"""Shared base of the CAM family: every method is a pytorch-grad-cam class applied to one layer.

pytorch-grad-cam returns, per image, a ReLU'd map upsampled to the input and min-max scaled to
[0, 1]; that is our (non-negative) attribution. Its hooks are removed by the context manager.
"""
from __future__ import annotations

import contextlib
from typing import Any, ClassVar, Iterator

import torch
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from core.modelling.architectures import get_layer, tokens_to_grid, traits_of
from core.errors import AttributionError
from core.explainers.base import Attribution, Explainer, Param

class _QuietTqdm:
    """Stands in for the ``tqdm`` module in pytorch-grad-cam's Score-CAM / Ablation-CAM (they draw bars on stderr)."""

    @staticmethod
    def tqdm(iterable, *args, **kwargs):
        return iterable


for _module in ("score_cam", "ablation_cam"):
    _mod = __import__(f"pytorch_grad_cam.{_module}", fromlist=["tqdm"])
    if hasattr(_mod, "tqdm"):
        _mod.tqdm = _QuietTqdm

LAYER = Param("layer", "layer", None, help="Convolutional layer whose feature maps are used (default: the model card's)",
              label="Layer")


def layer_channels(model: nn.Module, layer: str) -> int:
    """Feature maps of a layer (its last convolution's or normalisation's channel count; 1 if unknown)."""
    for m in reversed(list(get_layer(model, layer).modules())):
        n = getattr(m, "out_channels", None) or getattr(m, "num_features", None)
        if not n and isinstance(m, nn.LayerNorm):
            n = m.normalized_shape[0]
        if n:
            return int(n)
    return 1


@contextlib.contextmanager
def _gradients_only_for(model: nn.Module, layer: nn.Module) -> Iterator[None]:
    """Only the target layer's parameters require grad for the call (then restored).

    pytorch-grad-cam calls ``loss.backward()``, which by default also computes the gradient of every weight
    of the model and back-propagates below the target layer, though a CAM needs only the gradient at the
    layer's output. With the other weights frozen, autograd stops at the layer: the same CAM, bit for bit,
    for about half the backward cost. This runs on a private replica (the CAM family's declared effects).
    A layer without parameters of its own keeps the full backward.
    """
    own = {id(p) for p in layer.parameters()}
    if not own:
        yield
        return
    saved = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in saved:
            p.requires_grad_(id(p) in own)
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


class CamExplainer(Explainer):
    cam_class: ClassVar[type]
    family = "CAM"
    needs_layer = True
    signed = False
    outlier_perc = 0.0
    params = (LAYER,)
    units = "relative"  # pytorch-grad-cam min-max scales each map to [0, 1]
    # pytorch-grad-cam hooks the layer, calls model.zero_grad() and backward() (writes parameters' .grad)
    shared_effects = frozenset({"hooks", "module_state"})
    # with targets=None pytorch-grad-cam explains the argmax of its own forward pass (kept in ``cam.outputs``)
    predicts_target = True
    chunk_size = 32
    #: one forward pass per feature map and image (Score-CAM, Ablation-CAM): smaller chunks keep progress moving
    scores_each_channel: ClassVar[bool] = False

    @classmethod
    def chunk_for(cls, params, image_shape):
        return 4 if cls.scores_each_channel else cls.chunk_size

    @classmethod
    def cost(cls, params, model, image_shape):
        return layer_channels(model, params["layer"]) + 1 if cls.scores_each_channel else 1

    @classmethod
    def unavailable(cls, model: nn.Module) -> str | None:
        if not traits_of(model) & {"spatial", "tokens"}:
            why = "CAM methods weight a layer's feature maps (or a transformer's patch tokens); this model has neither"
            note = (getattr(model, "trait_notes", None) or {}).get("spatial")
            return f"{why} ({note})" if note else why
        return super().unavailable(model)

    @property
    def tokens(self) -> bool:
        """The model is a transformer: layer outputs are patch tokens, reshaped to a grid for the CAM."""
        return "tokens" in traits_of(self.model)

    def cam_kwargs(self, **params: Any) -> dict[str, Any]:
        """Constructor arguments beyond model, layer and reshape (e.g. a batch size)."""
        return {}

    def configure(self, cam: Any, **params: Any) -> None:
        """Set attributes the library reads but does not take as arguments."""

    def attribute(self, x: torch.Tensor, targets: torch.Tensor | None, *, seeds, progress, layer: str, **params: Any):
        target_layer = get_layer(self.model, layer)
        with _gradients_only_for(self.model, target_layer):
            return self._cam(x, targets, target_layer, **params)

    def _cam(self, x: torch.Tensor, targets: torch.Tensor | None, target_layer: nn.Module, **params: Any):
        maps, predicted = None, None
        reshape = {"reshape_transform": tokens_to_grid} if self.tokens else {}
        with self.cam_class(model=self.model, target_layers=[target_layer], **reshape, **self.cam_kwargs(**params)) as cam:
            self.configure(cam, **params)
            maps = cam(input_tensor=x, targets=None if targets is None else [ClassifierOutputTarget(int(t)) for t in targets])
            if targets is None:
                predicted = cam.outputs.argmax(dim=1)
        if maps is None:  # BaseCAM.__exit__ prints and swallows an IndexError
            raise AttributionError(f"{self.title} failed inside pytorch-grad-cam (an IndexError it swallowed; see the log)")
        return Attribution(maps, predicted=predicted)
