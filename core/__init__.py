"""XAI dashboard library: datasets, models, training and attribution methods, with no UI dependency.

Public API::

    from core import load_model, load_dataset, explain, list_methods
    model, card = load_model("models/shapes-small_cnn")
    ds = load_dataset("shapes", split="test")
    image, label = ds[7]
    e = explain(model, image, method="integrated_gradients", target=None, n_steps=64)
"""
from .checkpoints import ModelCard, list_models, load_model, save_model
from .datasets import dataset_info, list_datasets, load_dataset
from .errors import (AttributionError, CheckpointError, DatasetError, ImageError, ParameterError, TrainingError,
                     UnknownNameError, XaiError)
from .explainers import Explanation, explain, get_method, list_methods, predict

__all__ = [
    "AttributionError", "CheckpointError", "DatasetError", "Explanation", "ImageError", "ModelCard", "ParameterError",
    "TrainingError", "UnknownNameError", "XaiError", "dataset_info", "explain", "get_method", "list_datasets",
    "list_methods", "list_models", "load_dataset", "load_model", "predict", "save_model",
]
