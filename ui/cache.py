"""All Streamlit caching lives here.

* ``st.cache_resource`` for models and datasets: one shared object for every browser session. A shared
  model is only read (predictions and most methods run on it concurrently; methods that change a model
  run on a private replica, see :mod:`core.modelling.sharing`), so sharing is safe.
* A shared :class:`ResultStore` for explanations: one cell per (model folder and weights digest, image
  digest, method, parameters, target class, background); display controls are not part of the key.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from typing import Any, Callable, Sequence

import numpy as np
import streamlit as st

import core
from core.modelling.checkpoints import list_models


@st.cache_resource(show_spinner="Loading model…", max_entries=8)
def model(path: str, weights_sha256: str):
    """``(model, card)``; ``weights_sha256`` keys the cache so a retrained model is reloaded."""
    return core.load_model(path)


@st.cache_resource(show_spinner="Loading dataset…", max_entries=16)
def dataset(name: str, split: str, size: int | None = None, root: str | None = None):
    """A dataset split (read-only arrays, shared by every session)."""
    return core.load_dataset(name, split=split, size=size, root=root)


@st.cache_resource(show_spinner="Matching the dataset to the model's classes…", max_entries=8)
def fitted_dataset(name: str, split: str, size: int | None, root: str | None, classes: tuple[str, ...], channels: int,
                   _card):
    """:func:`dataset` as a model with ``classes`` and ``channels`` sees it (:func:`core.modelling.cards.fit_dataset`:
    labels in the model's class order, grey images repeated for a colour model); the same object when it fits as
    it is. Keyed by the dataset's arguments and the model's classes and channels, which decide the copy."""
    from core.modelling.cards import fit_dataset

    return fit_dataset(_card, dataset(name, split, size, root))


@st.cache_data(show_spinner="Listing the folder's images…", max_entries=8, ttl=60)
def folder_listing(root: str) -> tuple[list[str], list[str | None]]:
    """Every image under a folder with its class folder's name (:func:`core.datasets.folders.images_in`), sorted;
    read again after a minute (files added meanwhile appear)."""
    from pathlib import Path

    from core.datasets.folders import images_in

    paths, classes = images_in(Path(root))
    return [str(p) for p in paths], classes


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
    m, _ = model(model_path, weights_sha256)
    return core.predict_proba(m, dataset(dataset_name, split, size, root)).argmax(axis=1)


@st.cache_resource(show_spinner="Evaluating the model on its test split (once: kept beside the model)…", max_entries=16)
def evaluation(model_path: str, weights_sha256: str, root: str | None = None):
    """``(Evaluation, card)``: saved test predictions, metrics and OOD statistics, computed on first use."""
    from core.modelling.evaluation import load_or_compute

    m, _ = model(model_path, weights_sha256)
    return load_or_compute(model_path, m, data_root=root)


def ood_detector(model_path: str):
    """The model's OOD statistics, or None (read each time: a small file, and it appears after an evaluation)."""
    from core.modelling.ood import OodDetector

    return OodDetector.load(model_path)


class ResultStore:
    """Explanations shared by every browser session, one entry per (model, image, method, parameters,
    target, background) cell, least recently used dropped first. Thread-safe; entries are read-only.

    A page asks for many cells at once (:func:`explanations`); only the missing ones are computed, in one
    batched engine call per method, so a grid reuses every cell it has already shown.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[tuple, core.Explanation] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> core.Explanation | None:
        with self._lock:
            e = self._items.get(key)
            if e is not None:
                self._items.move_to_end(key)
            return e

    def put(self, key: tuple, e: core.Explanation) -> None:
        for a in (e.attribution, e.heatmap, e.segments):
            if a is not None:
                a.setflags(write=False)  # shared by every session: nobody may change it in place
        with self._lock:
            self._items[key] = e
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


@st.cache_resource
def results() -> ResultStore:
    return ResultStore()


def explanations(model_path: str, weights_sha256: str, images: Sequence[np.ndarray], method: str, params: dict,
                 targets: Sequence[int], background_key: str = "", background=None,
                 progress: Callable[[int, int], None] | None = None, compute: bool = True,
                 cancel=None) -> list[core.Explanation | None]:
    """One explanation per image (C, H, W float in [0, 1]) for its target class, through the shared store.

    The key of a cell is everything that determines it: model folder and weights digest, image digest,
    method, parameters (including the seed), target class, and which background sample. Display controls
    are never part of it. Missing cells are computed in one :func:`core.explain_batch` call (with
    ``compute=False`` they stay ``None``: what is already known, at no cost).
    """
    store = results()
    params_json = json.dumps(params, sort_keys=True)
    keys = [(model_path, weights_sha256, image_digest(img), method, params_json, int(t), background_key)
            for img, t in zip(images, targets)]
    found = [store.get(k) for k in keys]
    missing = [i for i, e in enumerate(found) if e is None]
    if missing and compute:
        m, _ = model(model_path, weights_sha256)
        batch = np.stack([images[i] for i in missing])
        computed = core.explain_batch(m, batch, method, targets=[int(targets[i]) for i in missing],
                                      background=background, progress=progress, cancel=cancel, **params)
        for i, e in zip(missing, computed):
            store.put(keys[i], e)
            found[i] = e
    return found


@st.cache_resource(show_spinner=False)
def warm_up_in_background() -> threading.Thread:
    """Once per server process: SHAP Partition's just-in-time compilation, in a background thread."""
    from core.explainers.shap_partition import warm_up

    def run() -> None:
        try:
            warm_up()
        except Exception:  # a failed warm-up only means the first SHAP call pays the compilation itself
            logging.getLogger(__name__).warning("SHAP warm-up failed", exc_info=True)

    thread = threading.Thread(target=run, name="shap-warm-up", daemon=True)
    thread.start()
    return thread


def estimator(model_path: str, weights_sha256: str):
    """The time estimates of this model (:class:`core.explainers.timing.Estimator`): its pass rates and each
    method's rate, measured once per model after a warm-up and kept while the cached model lives, so an estimate
    is the same on every run of the page."""
    from core.explainers.timing import estimator_for

    m, card = model(model_path, weights_sha256)
    return estimator_for(m, (card.channels, card.input_size, card.input_size))


def clear_all() -> None:
    st.cache_resource.clear()
    st.cache_data.clear()
