"""XAI dashboard library: datasets, models, training and attribution methods, with no UI dependency.

Public API::

    from core import load_model, load_dataset, explain, list_methods
    model, card = load_model("models/shapes-small_cnn")
    ds = load_dataset("shapes", split="test")
    image, label = ds[7]
    e = explain(model, image, method="integrated_gradients", target=None, n_steps=64)
    maps = explain_batch(model, ds.batch(range(64)), "grad_cam")   # one Explanation per image
    maps = explain(any_torch_module, preprocessed_batch, methods=["grad_cam", "integrated_gradients"])

A model from elsewhere: ``python -m core import-model FILE`` or :func:`core.importers.import_model`.
"""
from core.modelling.checkpoints import list_models, load_model, save_model
from core.modelling.cards import ModelCard
from core.datasets import dataset_info, list_datasets, load_dataset
from core.errors import (AttributionError, Cancelled, CheckpointError, DatasetError, ImageError, ImageTooLarge, NotApplicableError,
                     ParameterError, TrainingError, UnknownNameError, XaiError)
from core.explainers import CancelToken, Explanation, explain_batch, get_method, list_methods
from core.importers import explain, import_model, save_module
from core.modelling.prediction import predict, predict_proba

__all__ = [
    "AttributionError", "CancelToken", "Cancelled", "CheckpointError", "DatasetError", "Explanation", "ImageError",
    "ImageTooLarge", "ModelCard", "NotApplicableError", "ParameterError", "TrainingError", "UnknownNameError", "XaiError", "dataset_info", "explain",
    "explain_batch", "get_method", "import_model", "list_datasets", "list_methods", "list_models", "load_dataset",
    "load_model", "predict", "predict_proba", "save_model", "save_module",
]
