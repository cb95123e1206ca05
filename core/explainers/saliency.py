"""Saliency: the absolute input gradient (Simonyan et al., 2014), via captum."""
from __future__ import annotations

import torch
from captum.attr import Saliency as _Saliency

from .base import Explainer
from .registry import register


@register
class Saliency(Explainer):
    name = "saliency"
    title = "Saliency"
    description = "Absolute gradient of the class score with respect to each pixel (max over colour channels)."
    paper = "Simonyan, Vedaldi, Zisserman. Deep Inside Convolutional Networks. ICLR Workshop 2014. arXiv:1312.6034"
    signed = False
    channel_reduction = "max_abs"

    def attribute(self, x: torch.Tensor, target: int) -> torch.Tensor:
        return _Saliency(self.model).attribute(self.grad_input(x), target=target, abs=True)[0]
