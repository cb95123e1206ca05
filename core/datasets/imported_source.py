"""The imported models' "dataset": models made elsewhere take any image a user uploads (or a folder on the server),
whatever classes they know. Every imported model is listed here; one whose class names are a dataset's is listed
under that dataset too (:func:`core.modelling.checkpoints.list_models`)."""
from __future__ import annotations

from pathlib import Path

from core.datasets.base import ArrayDataset, DatasetInfo
from core.datasets.registry import register_source
from core.datasets.source import Source, Status
from core.errors import DatasetError


class ImportedPhotos(Source):
    info = DatasetInfo(name="imported", title="Imported models (any image)", classes=(), channels=3, image_size=224,
                       source="models you import: python -m core import-model FILE, the Import page, or POST /models",
                       license="yours", description="Upload any image, or point to a folder of images, and explain "
                                                    "what a model made elsewhere sees in it", splits=())
    photos_only = True

    def status(self, root: Path, size: int | None = None) -> Status:
        return Status("photos only", "no dataset images: explain an image you upload or a folder of images (the "
                                     "imported models' classes come from their cards)")

    def load(self, split: str, root: Path, size: int | None) -> ArrayDataset:
        raise DatasetError("imported models take images you upload or a folder you point to; there is no dataset here")


register_source(ImportedPhotos())
