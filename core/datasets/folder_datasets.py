"""The named image-folder datasets (each one declaration); any other folder is the ``folder`` dataset."""
from __future__ import annotations

from core.datasets.folders import FolderSource, FolderSpec
from core.datasets.registry import register_source

FOLDER_DATASETS = (
    FolderSpec(name="chest_xray", title="Chest X-ray pneumonia (Kermany, Kaggle)", folder="chest_xray", channels=1,
               default_size=128, classes=("NORMAL", "PNEUMONIA"),
               source="Kaggle 'Chest X-Ray Images (Pneumonia)' by Paul Mooney (Kermany et al., Cell 2018): unzip so "
                      "that data/chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/ exist",
               license="CC BY 4.0",
               description="Paediatric chest X-rays, normal vs pneumonia; Kaggle layout with split folders"),
    FolderSpec(name="dogs_vs_wolves", title="Dogs vs wolves", folder="dogs_vs_wolves", channels=3, default_size=128,
               classes=("dogs", "wolves"),
               source="Kaggle 'Dogs vs Wolves' (e.g. by Harish Vutukuri): put images in "
                      "data/dogs_vs_wolves/{dogs,wolves}/",
               license="see the Kaggle page of the copy you use",
               description="Photographs of dogs and wolves; the classic 'snow background' shortcut demo of LIME"),
    FolderSpec(name="insects", title="Insects", folder="insects", channels=3, default_size=128,
               source="Kaggle insect image sets (e.g. 'Insect Images' with beetles, cockroach, dragonflies): put "
                      "images in data/insects/<class>/",
               license="see the Kaggle page of the copy you use",
               description="Photographs of insects, one folder per class"),
    FolderSpec(name="folder", title="Any image folder", folder=None, channels=None, default_size=128,
               source="Any folder of class folders (or train/val/test folders of class folders): give its path",
               license="yours", description="Your own images; classes from folder names"),
)

for _spec in FOLDER_DATASETS:
    register_source(FolderSource(_spec))
