"""The ImageNet models' "dataset": no images, only the promise that any photo can be uploaded."""
from __future__ import annotations

from pathlib import Path

from core.datasets.base import ArrayDataset, DatasetInfo
from core.datasets.registry import register_source
from core.datasets.source import Source, Status
from core.errors import DatasetError


class ImageNetPhotos(Source):
    """Torchvision's ImageNet classifiers: any photo a user uploads, 1,000 classes. No ImageNet images are needed
    (or loaded): the class names ship with torchvision."""

    info = DatasetInfo(name="imagenet", title="ImageNet models (any photo, 1,000 classes)", classes=(), channels=3,
                       image_size=224, source="torchvision's ImageNet-1K weights (python -m core fetch-weights <arch>)",
                       license="ImageNet terms of access; torchvision weights BSD-3-Clause",
                       description="Upload any photograph; ResNet-18/50, DenseNet-121, EfficientNet-B0 and ViT-B/16 "
                                   "show their top-5 classes and explain any of the 1,000", splits=())
    photos_only = True

    def status(self, root: Path, size: int | None = None) -> Status:
        return Status("photos only", "no dataset images: upload any photo on Explain (its models' 1,000 class names "
                                     "ship with torchvision; their weights come from torchvision's cache)")

    def load(self, split: str, root: Path, size: int | None) -> ArrayDataset:
        raise DatasetError("the ImageNet models take photos you upload; there are no ImageNet images to load here")


register_source(ImageNetPhotos())
