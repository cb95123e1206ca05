"""The explainer registry (kept apart from ``__init__`` so method files can import ``register``)."""
from __future__ import annotations

from core.registry import Registry
from core.explainers.base import Explainer

EXPLAINERS: Registry[type[Explainer]] = Registry("method")


def register(cls: type[Explainer]) -> type[Explainer]:
    EXPLAINERS.register(cls.name)(cls)
    return cls
