"""Dataset sources behind one registry and one entry point, :func:`load_dataset`."""
from __future__ import annotations

from pathlib import Path

from .. import config
from ..registry import Registry
from . import shapes
from .base import ArrayDataset, DatasetInfo
from .folders import FolderSource
from .medmnist_source import MedMNISTSource
from .source import Source, Status

DATASETS: Registry[Source] = Registry("dataset")


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


class ImageNetPhotos(Source):
    """Torchvision's ImageNet classifiers: any photo a user uploads, 1,000 classes. No ImageNet images are needed
    (or loaded): the class names ship with torchvision."""

    info = DatasetInfo("imagenet", "ImageNet models (any photo, 1,000 classes)", (), 3, 224,
                       "torchvision's ImageNet-1K weights (python -m core fetch-weights <arch>)",
                       "ImageNet terms of access; torchvision weights BSD-3-Clause",
                       "Upload any photograph; ResNet-18/50, DenseNet-121, EfficientNet-B0 and ViT-B/16 show their "
                       "top-5 classes and explain any of the 1,000", splits=())
    photos_only = True

    def status(self, root: Path, size: int | None = None) -> Status:
        return Status("photos only", "no dataset images: upload any photo on Explain (its models' 1,000 class names "
                                     "ship with torchvision; their weights come from torchvision's cache)")

    def load(self, split: str, root: Path, size: int | None) -> ArrayDataset:
        from ..errors import DatasetError

        raise DatasetError("the ImageNet models take photos you upload; there are no ImageNet images to load here")


for _src in (
    ShapesSource(),
    SpuriousShapesSource(),
    MedMNISTSource("pathmnist", "PathMNIST (colon pathology)"),
    MedMNISTSource("pneumoniamnist", "PneumoniaMNIST (chest X-ray)"),
    FolderSource("chest_xray", "Chest X-ray pneumonia (Kermany, Kaggle)", "chest_xray", 1, 128,
                 "Kaggle 'Chest X-Ray Images (Pneumonia)' by Paul Mooney (Kermany et al., Cell 2018): unzip so that "
                 "data/chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/ exist", "CC BY 4.0",
                 "Paediatric chest X-rays, normal vs pneumonia; Kaggle layout with split folders",
                 classes=("NORMAL", "PNEUMONIA")),
    FolderSource("dogs_vs_wolves", "Dogs vs wolves", "dogs_vs_wolves", 3, 128,
                 "Kaggle 'Dogs vs Wolves' (e.g. by Harish Vutukuri): put images in data/dogs_vs_wolves/{dogs,wolves}/",
                 "see the Kaggle page of the copy you use",
                 "Photographs of dogs and wolves; the classic 'snow background' shortcut demo of LIME",
                 classes=("dogs", "wolves")),
    FolderSource("insects", "Insects", "insects", 3, 128,
                 "Kaggle insect image sets (e.g. 'Insect Images' with beetles, cockroach, dragonflies): put images "
                 "in data/insects/<class>/", "see the Kaggle page of the copy you use",
                 "Photographs of insects, one folder per class"),
    FolderSource("folder", "Any image folder", None, None, 128,
                 "Any folder of class folders (or train/val/test folders of class folders): give its path",
                 "yours", "Your own images; classes from folder names"),
    ImageNetPhotos(),
):
    DATASETS.register(_src.info.name)(_src)


def list_datasets(labelled: bool = False) -> list[str]:
    """Registered dataset names; ``labelled``: only those with labelled images (to train on, evaluate, assess)."""
    return [n for n in DATASETS.names() if not (labelled and DATASETS.get(n).photos_only)]


def get_source(name: str) -> Source:
    return DATASETS.get(name)


def dataset_info(name: str) -> DatasetInfo:
    return DATASETS.get(name).info


def dataset_status(name: str, size: int | None = None, root: str | Path | None = None) -> Status:
    return DATASETS.get(name).status(Path(root) if root else config.data_dir(), size)


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
    """
    return DATASETS.get(name).load(split, Path(root) if root else config.data_dir(), size)


__all__ = ["ArrayDataset", "DatasetInfo", "DATASETS", "Source", "Status", "dataset_info", "dataset_status",
           "get_source", "list_datasets", "load_dataset"]
