"""Attribution methods: the public names, and the registry that every method file registers into.

>>> from core import load_model, load_dataset, explain
>>> model, card = load_model("models/shapes-small_cnn")
>>> image, label = load_dataset("shapes", split="test")[7]
>>> e = explain(model, image, method="integrated_gradients", n_steps=64)
>>> e.attribution.shape, e.target, e.seconds

The call lives in :mod:`.engine`, seeding in :mod:`.seeding`, replicas of shared models in :mod:`.sharing`;
predictions in :mod:`core.prediction`.
"""
from __future__ import annotations

from . import (  # noqa: F401  (registration, in display order)
    grad_cam, grad_cam_plusplus, xgrad_cam, layer_cam, hires_cam, eigen_cam, score_cam, ablation_cam,
    saliency, integrated_gradients, smoothgrad, input_x_gradient, guided_backprop, guided_grad_cam, deeplift,
    gradient_shap, occlusion, lime_image, shap_partition, shap_gradient, attention_rollout,
)
from ..prediction import predict, predict_proba
from .base import MODEL_EFFECTS, Explainer, Explanation, Param
from .engine import (CancelToken, ProgressFn, explain, explain_batch, get_method, hidden_methods,
                     list_methods, resolve_params,
                     to_heatmap)
from .registry import EXPLAINERS, register
from .seeding import image_seeds, rng_lock

__all__ = ["EXPLAINERS", "MODEL_EFFECTS", "CancelToken", "Explainer", "Explanation", "Param", "ProgressFn", "explain",
           "explain_batch", "get_method", "hidden_methods", "image_seeds", "list_methods", "predict", "predict_proba", "register",
           "resolve_params", "rng_lock", "to_heatmap"]
