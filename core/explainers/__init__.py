"""Attribution methods: the public names, and the registry that every method file registers into.

>>> from core import load_model, load_dataset, explain
>>> model, card = load_model("models/shapes-small_cnn")
>>> image, label = load_dataset("shapes", split="test")[7]
>>> e = explain(model, image, method="integrated_gradients", n_steps=64)
>>> e.attribution.shape, e.target, e.seconds

The call lives in :mod:`.engine`, the method contract in :mod:`.base`, seeding in :mod:`.seeding`, heat-map scaling
in :mod:`.heatmap`; replicas of shared models in :mod:`core.modelling.sharing`, predictions in
:mod:`core.modelling.prediction`.
"""
from __future__ import annotations

from core.explainers import (  # noqa: F401  (registration, in display order)
    grad_cam, grad_cam_plusplus, xgrad_cam, layer_cam, hires_cam, eigen_cam, score_cam, ablation_cam,
    saliency, integrated_gradients, smoothgrad, input_x_gradient, guided_backprop, guided_grad_cam, deeplift,
    gradient_shap, occlusion, lime_image, shap_partition, shap_gradient, attention_rollout,
)
from core.modelling.prediction import predict, predict_proba
from core.explainers.base import MODEL_EFFECTS, Attribution, Explainer, Explanation, Param
from core.explainers.engine import (CancelToken, ProgressFn, explain, explain_batch, get_method, hidden_methods,
                                    list_methods, resolve_params)
from core.explainers.heatmap import robust_scale, to_heatmap
from core.explainers.registry import EXPLAINERS, register
from core.explainers.seeding import image_seeds, rng_lock

__all__ = ["EXPLAINERS", "MODEL_EFFECTS", "Attribution", "CancelToken", "Explainer", "Explanation", "Param", "ProgressFn", "explain",
           "explain_batch", "get_method", "hidden_methods", "image_seeds", "list_methods", "predict", "predict_proba", "register",
           "resolve_params", "rng_lock", "robust_scale", "to_heatmap"]
