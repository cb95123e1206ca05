"""Attribution methods behind one registry and one call, :func:`explain`.

>>> from core import load_model, load_dataset, explain
>>> model, card = load_model("models/shapes-small_cnn")
>>> image, label = load_dataset("shapes", split="test")[7]
>>> e = explain(model, image, method="integrated_gradients", n_steps=64)
>>> e.attribution.shape, e.target, e.seconds
"""
from __future__ import annotations

import contextlib
import random
import time
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import AttributionError, ParameterError, XaiError
from ..maps import robust_scale
from . import (  # noqa: F401  (registration, in display order)
    grad_cam, grad_cam_plusplus, xgrad_cam, layer_cam, hires_cam, eigen_cam, score_cam, ablation_cam,
    saliency, integrated_gradients, smoothgrad, input_x_gradient, guided_backprop, guided_grad_cam, deeplift,
    gradient_shap, occlusion, lime_image, shap_partition, shap_gradient,
)
from .base import Explainer, Explanation, Param, model_lock, rng_lock
from .registry import EXPLAINERS, register


# captum announces, on every call, that it adds and removes hooks (we check that none survive ourselves).
for _message in ("Setting backward hooks on ReLU activations", "Setting forward, backward hooks and attributes on non-linear",
                 "Input Tensor 0 did not already require gradients"):
    warnings.filterwarnings("ignore", message=_message, category=UserWarning)


def list_methods() -> list[str]:
    """Registered method names, in registration order."""
    return EXPLAINERS.names()


def get_method(name: str) -> type[Explainer]:
    return EXPLAINERS.get(name)


def resolve_params(method: str, model: nn.Module | None = None, **params: Any) -> dict[str, Any]:
    """The full, validated parameter set of ``method``: defaults filled in, unknown names refused.

    A ``layer`` parameter left at ``None`` becomes the model's default target layer.
    """
    cls = EXPLAINERS.get(method)
    known = {p.name: p for p in cls.params}
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ParameterError(f"{method} has no parameter {', '.join(map(repr, unknown))}; it takes: {', '.join(known) or 'none'}")
    out = {}
    for name, p in known.items():
        value = params.get(name, p.default)
        if p.kind == "layer" and value is None:
            value = getattr(model, "target_layer", None)
            if value is None:
                raise ParameterError(f"{method} needs a layer: pass layer=... (the model declares no default)")
        out[name] = p.validate(value)
    return out


def _as_batch(image: torch.Tensor | np.ndarray, device: torch.device) -> torch.Tensor:
    x = torch.as_tensor(image)
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"explain takes one image (C, H, W) or (1, C, H, W), got shape {tuple(x.shape)}")
    return x.detach().to(device=device, dtype=torch.float32).clone()


def _reduce(attr: np.ndarray, how: str) -> np.ndarray:
    if attr.ndim == 2:
        return attr
    if how == "max_abs":
        return np.abs(attr).max(axis=0)
    return attr.sum(axis=0)


def to_heatmap(attribution: np.ndarray, outlier_perc: float = 1.0) -> tuple[np.ndarray, bool]:
    """Scale ``|attribution|`` to [0, 1] by its (100 - outlier_perc) percentile; ``(zeros, True)`` if flat."""
    mag = np.abs(attribution)
    scale = robust_scale(attribution, outlier_perc)
    if scale <= 1e-12 or float(attribution.max() - attribution.min()) <= 1e-12 * max(1.0, scale):
        return np.zeros_like(mag, dtype=np.float32), True
    return np.clip(mag / scale, 0.0, 1.0).astype(np.float32), False


def predict(model: nn.Module, image: torch.Tensor | np.ndarray) -> np.ndarray:
    """Class probabilities (K,) for one image (C, H, W) in [0, 1].

    Holds the model's lock: a forward pass must not run through hooks another thread's
    attribution has placed on a shared model.
    """
    device = next(model.parameters()).device
    with model_lock(model), torch.inference_mode():
        return torch.softmax(model(_as_batch(image, device)), dim=1)[0].cpu().numpy()


@contextlib.contextmanager
def _seeded(seed: int | None):
    """Seed torch, numpy and random for one stochastic call, then restore the global RNG states."""
    if seed is None:
        yield
        return
    with rng_lock, torch.random.fork_rng(devices=[]):
        np_state, py_state = np.random.get_state(), random.getstate()
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


def explain(model: nn.Module, image: torch.Tensor | np.ndarray, method: str, target: int | None = None, *,
            background: torch.Tensor | None = None, **params: Any) -> Explanation:
    """Explain the model's score for ``target`` on one image.

    Args:
        model: a classifier taking (N, C, H, W) images in [0, 1] (see :mod:`core.architectures`).
        image: (C, H, W) or (1, C, H, W) float in [0, 1]. Never modified.
        method: a name from :func:`list_methods`.
        target: class index to explain; ``None`` = the predicted class.
        background: (N, C, H, W) training images in [0, 1] for methods that need a background sample
            (``needs_background``); without it they build a synthetic one and say so in ``extras``.
        **params: the method's parameters (see ``get_method(method).params``); missing ones take defaults.
            Stochastic methods take ``seed``: the same seed gives the same map.

    Raises:
        UnknownNameError: unknown method or layer.  ParameterError: bad parameter.
        AttributionError: the method failed or produced a non-finite map.
    """
    cls = EXPLAINERS.get(method)
    full = resolve_params(method, model, **params)
    device = next(model.parameters()).device
    x = _as_batch(image, device)
    with model_lock(model):
        model.eval()
        with torch.inference_mode():
            logits = model(x)
        n_classes = logits.shape[1]
        if target is None:
            target = int(logits.argmax(dim=1))
        elif not 0 <= int(target) < n_classes:
            raise ParameterError(f"target must be a class index in [0, {n_classes - 1}], got {target}")
        target = int(target)
        explainer = cls(model, background=None if background is None else torch.as_tensor(background).to(device))
        t0 = time.perf_counter()
        try:
            with _seeded(full.get("seed") if cls.stochastic else None):
                raw = explainer.attribute(x, target, **full)
        except XaiError:
            raise
        except Exception as exc:
            raise AttributionError(f"{cls.title} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            model.eval()  # some libraries switch modes (shap's GradientExplainer); leave the shared model as found
        seconds = time.perf_counter() - t0
    if isinstance(raw, torch.Tensor):
        raw = raw.detach().float().cpu().numpy()
    attribution = _reduce(np.asarray(raw, dtype=np.float32), explainer.reduction)
    if attribution.shape != tuple(x.shape[-2:]):
        raise AttributionError(f"{cls.title} returned a map of shape {attribution.shape}, expected {tuple(x.shape[-2:])}")
    if not np.all(np.isfinite(attribution)):
        bad = int((~np.isfinite(attribution)).sum())
        raise AttributionError(f"{cls.title} produced {bad} non-finite values (NaN/inf); try other parameters or another method")
    heatmap, flat = to_heatmap(attribution, cls.outlier_perc)
    return Explanation(
        method=cls.name, title=cls.title, attribution=attribution, heatmap=heatmap, target=target,
        params=full, seconds=seconds, signed=explainer.signed_output, flat=flat, extras=dict(explainer.extras),
    )


__all__ = ["EXPLAINERS", "Explainer", "Explanation", "Param", "explain", "get_method", "list_methods", "model_lock",
           "predict", "register", "resolve_params", "to_heatmap"]
