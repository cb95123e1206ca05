"""A model made elsewhere, at home here: :class:`ImportedClassifier` takes what every model of the project takes
(images (N, C, H, W) in [0, 1], RGB or grey) and does the model's own preprocessing inside, as a
:class:`~core.modelling.architectures.Classifier` normalises inside, so that baselines, perturbations and maps are all
in the same pixel space whatever the model was trained with.

Inside, in order: the card's normalisation (its mean / std, taken to [0, 1] units and RGB order), the channels put in
the model's own order (BGR for many Caffe and Keras models), channels-last where the model wants it (Keras exports),
the module itself, and its output read as logits: a Hugging Face ``.logits``, the first of a tuple, and the log of
probabilities for a model that ends in a softmax that could not be taken off (the softmax of the log-probabilities
is the probabilities again, so predictions are unchanged; the maps then explain the log-probability).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from core.errors import CheckpointError
from core.modelling.architectures import Normalize


def as_logits(out: Any) -> torch.Tensor:
    """The class scores (N, K) in whatever a classifier returns: a tensor, an object with ``logits`` (Hugging Face's
    outputs), a mapping with ``"logits"``, or a tuple / list whose first item is one of these."""
    for _ in range(4):
        if isinstance(out, torch.Tensor):
            if out.ndim != 2:
                raise CheckpointError(f"the model returns a tensor of shape {tuple(out.shape)}, not class scores "
                                      "(N, classes)")
            return out
        if hasattr(out, "logits"):
            out = out.logits
        elif isinstance(out, dict) and "logits" in out:
            out = out["logits"]
        elif isinstance(out, (tuple, list)) and out:
            out = out[0]
        else:
            break
    raise CheckpointError(f"the model returns {type(out).__name__}, not class scores (a tensor, or an output with "
                          "logits)")


#: probabilities are clamped here before the log (a zero would give -inf, and no gradient)
TINY = 1e-30


class ImportedClassifier(nn.Module):
    """``normalize`` (the card's mean / std in [0, 1] units, RGB order), the channel order and layout the model wants,
    ``net``, and its output as logits.

    Attributes, as on a Classifier: ``target_layer`` (the default CAM layer), ``traits`` (what attribution methods
    may rely on, found by running it: :mod:`core.importers.probe`), and also ``cam_layers`` (the layers a CAM can
    weight) and ``trait_notes`` (why a trait is missing, shown where a method is not offered).
    """

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float], *, channel_order: str = "rgb",
                 layout: str = "nchw", output: str = "logits", fixed_batch: int | None = None) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net
        self.bgr = channel_order == "bgr"
        self.nhwc = layout == "nhwc"
        self.probabilities = output == "probabilities"
        self.fixed_batch = fixed_batch
        self.target_layer: str | None = None
        self.traits: frozenset[str] | None = None
        self.cam_layers: list[str] = []
        #: why a trait is missing; a module that knows (ONNX Runtime's, a TorchScript graph's) says so itself
        self.trait_notes: dict[str, str] = dict(getattr(net, "trait_notes", None) or {})

    def model_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the module itself receives for images ``x`` in [0, 1] (its own scale, channel order and layout)."""
        x = self.normalize(x)
        if self.bgr:
            x = x.flip(1)
        return x.permute(0, 2, 3, 1) if self.nhwc else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.model_input(x)
        if self.fixed_batch == 1 and len(x) != 1:  # a graph exported for one image at a time
            out = torch.cat([as_logits(self.net(x[i:i + 1])) for i in range(len(x))])
        else:
            out = as_logits(self.net(x))
        return torch.log(out.clamp_min(TINY)) if self.probabilities else out
