"""All Streamlit caching lives here.

* ``st.cache_resource`` for models and datasets: one shared object for every browser session.
  Models are only used through :func:`core.explain`, which holds a per-model lock, so sharing is safe.
* ``st.cache_data`` for explanations: keyed by everything that determines them (model folder and
  weights digest, image digest, method, parameters, target); display controls are not part of the key.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import streamlit as st

import core
from core.checkpoints import list_models


@st.cache_resource(show_spinner="Loading model…", max_entries=8)
def model(path: str, weights_sha256: str):
    """``(model, card)``; ``weights_sha256`` keys the cache so a retrained model is reloaded."""
    return core.load_model(path)


@st.cache_resource(show_spinner="Loading dataset…", max_entries=16)
def dataset(name: str, split: str, size: int | None = None, root: str | None = None):
    """A dataset split (read-only arrays, shared by every session)."""
    return core.load_dataset(name, split=split, size=size, root=root)


def models_for(dataset_name: str) -> list[tuple[str, Any]]:
    """``[(path, card)]`` of readable models trained on ``dataset_name`` (not cached: cheap, and must see new ones)."""
    return [(str(p), c) for p, c in list_models(dataset=dataset_name)]


def image_digest(image: np.ndarray) -> str:
    a = np.ascontiguousarray(image)
    return hashlib.sha256(a.tobytes() + str((a.shape, a.dtype)).encode()).hexdigest()


BACKGROUND_N, BACKGROUND_SEED = 256, 0


@st.cache_resource(show_spinner="Sampling background images…", max_entries=8)
def background(dataset_name: str, size: int, root: str | None = None):
    """A fixed, seeded sample of training images for methods that need a background (SHAP Gradient)."""
    return dataset(dataset_name, "train", size, root).sample(BACKGROUND_N, seed=BACKGROUND_SEED)


def background_key(dataset_name: str, size: int, root: str | None = None) -> str:
    """What identifies :func:`background`'s sample in the results cache key."""
    return f"{dataset_name}/{root}/train/{size}/{BACKGROUND_N}/seed{BACKGROUND_SEED}"


@st.cache_data(show_spinner="Predicting the whole split…", max_entries=32)
def split_predictions(model_path: str, weights_sha256: str, dataset_name: str, split: str, size: int,
                      root: str | None = None) -> np.ndarray:
    """Predicted class of every image of a split (for "misclassified only")."""
    from core.explainers import model_lock
    from core.metrics import predict_proba

    m, _ = model(model_path, weights_sha256)
    with model_lock(m):
        return predict_proba(m, dataset(dataset_name, split, size, root)).argmax(axis=1)


@st.cache_data(show_spinner=False, max_entries=2048)
def explanation(model_path: str, weights_sha256: str, img_digest: str, method: str, params_json: str,
                target: int | None, background_key: str, _image: np.ndarray, _background=None) -> core.Explanation:
    """Explanation of ``_image`` (C, H, W float in [0, 1]).

    The key is everything that determines the result: model folder and weights digest, image digest,
    method, parameters (including the seed), target, and which background sample (``background_key``).
    Display controls are never part of it.
    """
    m, _ = model(model_path, weights_sha256)
    return core.explain(m, _image, method, target=target, background=_background, **json.loads(params_json))


def clear_all() -> None:
    st.cache_resource.clear()
    st.cache_data.clear()
