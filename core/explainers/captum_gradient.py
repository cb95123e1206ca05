"""Shared base of captum's single-pass gradient methods (Saliency, Input x Gradient, Guided Backprop)."""
from __future__ import annotations

from typing import Any, ClassVar

from core.explainers.base import Explainer


class CaptumGradientExplainer(Explainer):
    captum_class: ClassVar[type]
    #: extra keyword arguments of the captum ``attribute`` call
    attribute_kwargs: ClassVar[dict[str, Any]] = {}

    def attribute(self, x, targets, *, seeds, progress):
        return self.captum_class(self.model).attribute(self.grad_input(x), target=targets, **self.attribute_kwargs)
