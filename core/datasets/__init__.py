"""Dataset sources behind one registry and one entry point, :func:`load_dataset`.

One file per source, each registering its datasets on import (the order below is the order of every list):
the synthetic shapes (:mod:`.shapes_source`), MedMNIST (:mod:`.medmnist_source`), image folders
(:mod:`.folders`, the named ones declared in :mod:`.folder_datasets`), the ImageNet models' photos
(:mod:`.imagenet_source`) and the imported models' (:mod:`.imported_source`).
"""
from core.datasets import shapes_source, medmnist_source, folder_datasets, imagenet_source, imported_source  # noqa: F401,I001  (registration)
from core.datasets.base import ArrayDataset, DatasetInfo
from core.datasets.registry import (DATASETS, dataset_info, dataset_status, get_source, list_datasets, load_dataset,
                                    register_source)
from core.datasets.source import Source, Status

__all__ = ["ArrayDataset", "DatasetInfo", "DATASETS", "Source", "Status", "dataset_info", "dataset_status",
           "get_source", "list_datasets", "load_dataset", "register_source"]
