"""The built-in synthetic datasets as sources: ``shapes`` and ``shapes_spurious`` (generated locally, no network)."""
from __future__ import annotations

from pathlib import Path

from core.datasets import shapes
from core.datasets.base import ArrayDataset
from core.datasets.registry import register_source
from core.datasets.source import Source, Status


class ShapesSource(Source):
    info = shapes.INFO
    sizes = (64, 32, 128)

    def status(self, root: Path, size: int | None = None) -> Status:
        return Status("ready", "generated locally on first use (no download)")

    def load(self, split: str, root: Path, size: int | None) -> ArrayDataset:
        return shapes.load(split, root, size or shapes.INFO.image_size)


class SpuriousShapesSource(ShapesSource):
    info = shapes.SPURIOUS_INFO

    def load(self, split: str, root: Path, size: int | None) -> ArrayDataset:
        return shapes.load_spurious(split, root, size or shapes.SPURIOUS_INFO.image_size)


register_source(ShapesSource())
register_source(SpuriousShapesSource())
