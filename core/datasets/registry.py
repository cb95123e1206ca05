"""The dataset registry and its entry point, :func:`load_dataset`. Each source file registers its datasets here."""
from __future__ import annotations

from pathlib import Path

from core import config
from core.errors import UnknownNameError
from core.datasets.base import ArrayDataset, DatasetInfo
from core.datasets.source import Source, Status
from core.registry import Registry

DATASETS: Registry[Source] = Registry("dataset")


def register_source(source: Source) -> Source:
    """Register a source instance under its ``info.name`` (the order of registration is the order of every list)."""
    DATASETS.register(source.info.name)(source)
    return source


def list_datasets(labelled: bool = False) -> list[str]:
    """Registered dataset names; ``labelled``: only those with labelled images (to train on, evaluate, assess)."""
    return [n for n in DATASETS.names() if not (labelled and DATASETS.get(n).photos_only)]


def get_source(name: str) -> Source:
    return DATASETS.get(name)


def dataset_info(name: str) -> DatasetInfo:
    return DATASETS.get(name).info


def dataset_status(name: str, size: int | None = None, root: str | Path | None = None) -> Status:
    return DATASETS.get(name).status(Path(root) if root else config.data_dir(), size)


#: the splits a dataset may have
SPLITS = ("train", "val", "test")


def load_dataset(name: str, split: str = "test", size: int | None = None, root: str | Path | None = None) -> ArrayDataset:
    """Load one split of a registered dataset.

    Args:
        name: registry name (see :func:`list_datasets`); ``folder`` takes any folder as ``root``.
        split: ``train``, ``val`` or ``test``.
        size: image side in pixels (default: the dataset's default; for MedMNIST, the size found on disk,
            preferring 64).
        root: data folder (default: ``XAI_DATA_DIR`` or ``<repo>/data``); for folder datasets it may be
            the dataset's own folder.
    Raises:
        DatasetError: files missing (with what to do), malformed, or unreadable.
        UnknownNameError: no such dataset, or no such split.
    """
    source = DATASETS.get(name)
    if split not in SPLITS:
        raise UnknownNameError(f"Unknown split {split!r}: use one of {', '.join(SPLITS)}")
    return source.load(split, Path(root) if root else config.data_dir(), size)
