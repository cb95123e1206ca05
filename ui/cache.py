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
def dataset(name: str, split: str, size: int | None = None):
    return core.load_dataset(name, split=split, size=size)


def models_for(dataset_name: str) -> list[tuple[str, Any]]:
    """``[(path, card)]`` of readable models trained on ``dataset_name`` (not cached: cheap, and must see new ones)."""
    return [(str(p), c) for p, c in list_models(dataset=dataset_name)]


def image_digest(image: np.ndarray) -> str:
    a = np.ascontiguousarray(image)
    return hashlib.sha256(a.tobytes() + str((a.shape, a.dtype)).encode()).hexdigest()


@st.cache_data(show_spinner=False, max_entries=1024)
def explanation(model_path: str, weights_sha256: str, img_digest: str, method: str, params_json: str,
                target: int | None, _image: np.ndarray) -> core.Explanation:
    """Explanation of ``_image`` (C, H, W float in [0, 1]); ``_image`` is keyed by ``img_digest``."""
    m, _ = model(model_path, weights_sha256)
    return core.explain(m, _image, method, target=target, **json.loads(params_json))


def clear_all() -> None:
    st.cache_resource.clear()
    st.cache_data.clear()
