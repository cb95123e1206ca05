"""Dataset sources behind one registry and one entry point, :func:`load_dataset`."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from .. import config
from ..registry import Registry
from . import shapes
from .base import ArrayDataset, DatasetInfo

#: name -> (info, loader(split, root, size) -> dataset)
DATASETS: Registry[tuple[DatasetInfo, Callable[..., ArrayDataset]]] = Registry("dataset")
DATASETS.register("shapes")((shapes.INFO, shapes.load))


def list_datasets() -> list[str]:
    return DATASETS.names()


def dataset_info(name: str) -> DatasetInfo:
    return DATASETS.get(name)[0]


def load_dataset(name: str, split: str = "test", size: int | None = None, root: str | Path | None = None) -> ArrayDataset:
    """Load one split of a registered dataset.

    Args:
        name: registry name (see :func:`list_datasets`).
        split: ``train``, ``val`` or ``test``.
        size: image side in pixels (default: the dataset's native size).
        root: data folder (default: ``XAI_DATA_DIR`` or ``<repo>/data``).
    """
    info, loader = DATASETS.get(name)
    return loader(split, Path(root) if root else config.data_dir(), size or info.image_size)


__all__ = ["ArrayDataset", "DatasetInfo", "DATASETS", "dataset_info", "list_datasets", "load_dataset"]
