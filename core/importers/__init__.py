"""Bring your own model: import a classifier trained anywhere and explain it everywhere a model trained here is.

Formats (:mod:`.formats`): a state dict of any architecture this project builds, with any head (:mod:`.state_dicts`),
TorchScript (:mod:`.torchscript`), ONNX (:mod:`.onnx_graphs`), timm (:mod:`.timm_models`) and Hugging Face
transformers folders (:mod:`.hf_models`); a pickled whole model is refused without unpickling anything
(:mod:`.files`). An imported model takes images in [0, 1] like every model here (:mod:`.wrapper`), and what methods
it supports is found by running it (:mod:`.probe`).

>>> from core.importers import inspect_source, check, save_imported
>>> draft = inspect_source("best_pathmnist_resnet18.pth", classes=PATH_CLASSES, input_size=224)
>>> print("\\n".join(draft.lines()))          # every card value, and where it came from
>>> save_imported(draft)                      # models/best_pathmnist_resnet18/, in every model list
"""
from core.importers.check import CheckResult, check, dataset_images, folder_images, upload_images
from core.importers.draft import Draft
from core.importers.formats import FORMATS
from core.importers.importing import import_model, inspect_source, save_imported
from core.importers.notebook import explain, save_module
from core.importers.settings import SETTINGS
from core.importers.uploads import staged
from core.importers.wrapper import ImportedClassifier

__all__ = ["FORMATS", "SETTINGS", "CheckResult", "Draft", "ImportedClassifier", "check", "dataset_images", "explain",
           "folder_images", "import_model", "inspect_source", "save_imported", "save_module", "staged", "upload_images"]
