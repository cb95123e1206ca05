"""The quality-metric registry: every metric file registers its class here (in display order)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from core.registry import Registry

if TYPE_CHECKING:
    from core.quality.base import Metric

CATEGORIES = ("faithfulness", "localisation", "stability", "sanity", "complexity")

METRICS: Registry[type[Metric]] = Registry("quality metric")


def register(cls: type[Metric]) -> type[Metric]:
    if cls.category not in CATEGORIES:
        raise ValueError(f"{cls.__name__}.category must be one of {', '.join(CATEGORIES)}, got {cls.category!r}")
    METRICS.register(cls.name)(cls)
    return cls


def list_metrics() -> list[str]:
    return METRICS.names()


def get_metric(name: str) -> type[Metric]:
    return METRICS.get(name)
