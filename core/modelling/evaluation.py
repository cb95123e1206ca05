"""A model's test-split evaluation, computed once and kept beside the model.

``predictions.npz`` (true labels and class probabilities of every test image), ``metrics.json`` (the headline,
per-class numbers, curves and the reliability diagram) and ``ood.npz`` (out-of-distribution statistics) live in
the model's folder. Training publishes them with the model; :func:`load_or_compute` rebuilds them for models
that lack them (or whose weights changed), so a restart never recomputes them.
"""
from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core.modelling.checkpoints import load_model, resolve_model_path
from core.modelling.cards import CARD_FILE, ModelCard
from core.datasets import load_dataset
from core.errors import CheckpointError, DatasetError
from core.io import atomic_write_bytes, atomic_write_json
from core.modelling.classification import classification_metrics, curves, reliability
from core.modelling.ood import OOD_FILE, OodDetector
from core.modelling.prediction import predict_proba

log = logging.getLogger(__name__)
PREDICTIONS_FILE = "predictions.npz"
METRICS_FILE = "metrics.json"


@dataclass
class Evaluation:
    y_true: np.ndarray
    proba: np.ndarray
    metrics: dict[str, Any]  # classification_metrics + "split", "ood"
    details: dict[str, Any]  # curves and reliability
    ood: OodDetector | None

    def files(self, card: ModelCard) -> dict[str, bytes]:
        buf = io.BytesIO()
        np.savez(buf, y_true=self.y_true, proba=self.proba)
        out = {PREDICTIONS_FILE: buf.getvalue(),
               METRICS_FILE: (json.dumps({"weights_sha256": card.weights_sha256, "metrics": self.metrics,
                                          **self.details}, indent=1) + "\n").encode()}
        if self.ood is not None:
            out[OOD_FILE] = self.ood.to_bytes()
        return out


def compute(model, card: ModelCard, test_ds, train_ds=None, val_ds=None,
            progress: Callable[[str], None] | None = None, proba: np.ndarray | None = None) -> Evaluation:
    """Predictions (unless ``proba``, saved ones, is given) and metrics on ``test_ds``; OOD statistics when the
    train and val splits are given."""
    say = progress or (lambda m: None)
    if proba is None:
        say("predicting the test split")
        proba = predict_proba(model, test_ds)
    metrics = classification_metrics(test_ds.labels, proba, card.classes)
    metrics["split"] = "test"
    details = {"curves": curves(test_ds.labels, proba, card.classes), "reliability": reliability(test_ds.labels, proba)}
    det = None
    if train_ds is not None and val_ds is not None and len(val_ds) > 0:
        from core.modelling import ood

        say("fitting the out-of-distribution score")
        try:
            det = ood.fit(model, train_ds, val_ds)
            test_scores = det.score(model, test_ds)
        except (ValueError, np.linalg.LinAlgError) as exc:  # degenerate features: the model stays usable, unflagged
            log.warning("no OOD statistics for %s: %s", card.id, exc)
            det = None
            metrics["ood"] = {"error": f"OOD statistics could not be fitted: {exc}"}
        else:
            metrics["ood"] = {"method": "Mahalanobis distance of per-layer features (Lee et al. 2018)",
                              "threshold": det.threshold, "quantile": ood.QUANTILE,
                              "val_flag_rate": float((det.val_scores > det.threshold).mean()),
                              "test_flag_rate": float((test_scores > det.threshold).mean())}
    return Evaluation(test_ds.labels.copy(), proba, metrics, details, det)


def _read(folder: Path, card: ModelCard, dataset: str | None = None) -> Evaluation | None:
    pred, met = folder / PREDICTIONS_FILE, folder / METRICS_FILE
    if not (pred.is_file() and met.is_file()):
        return None
    try:
        saved = json.loads(met.read_text())
        with np.load(pred, allow_pickle=False) as z:
            y, p = z["y_true"], z["proba"]
    except Exception:
        return None  # unreadable: recomputed and rewritten
    if saved.get("weights_sha256") != card.weights_sha256 or p.shape != (len(y), len(card.classes)):
        return None  # stale (the weights changed) or not this model's
    if saved.get("metrics", {}).get("dataset", card.dataset) != (dataset or card.dataset):
        return None  # measured on another dataset
    return Evaluation(y, p, saved["metrics"], {k: saved[k] for k in ("curves", "reliability") if k in saved},
                      OodDetector.load(folder))


def load_or_compute(model_path, model=None, data_root: str | None = None,
                    progress: Callable[[str], None] | None = None, dataset: str | None = None
                    ) -> tuple[Evaluation, ModelCard]:
    """The model's saved evaluation, or compute it (test predictions, metrics and, when the train and val splits
    are available, OOD statistics) and write it beside the model atomically.

    ``dataset``: another dataset than the model's own (a model imported from elsewhere, on any dataset or labelled
    folder whose class names are its own, mapped by name: the mapping is in ``metrics["class_mapping"]``). An
    imported model's card then carries the metrics measured here.

    Raises :class:`DatasetError` (saying what is missing) when the test split is not available."""
    from core.datasets import get_source
    from core.modelling.checkpoints import read_card
    from core.modelling.data_roots import locate
    from core.modelling.cards import fit_dataset

    folder = resolve_model_path(model_path)
    if model is None:
        model, card = load_model(folder, device="cpu")
    else:
        card = read_card(folder)
    name = dataset or card.dataset
    found = _read(folder, card, name)
    if found is not None and found.ood is not None:
        return found, card
    if get_source(name).photos_only:
        raise DatasetError(f"{card.id} has no labelled dataset ({get_source(name).info.title}): evaluate it on a labelled "
                           f"folder whose class folders are its classes: python -m core evaluate --model {card.id} "
                           "--dataset folder --data-dir FOLDER")
    root = locate(name, given=data_root, card=card if name == card.dataset else None)[0]

    def split(which: str):
        try:
            ds = load_dataset(name, which, size=card.input_size, root=root)
        except DatasetError as exc:
            if which == "test":
                raise DatasetError(f"cannot evaluate {card.id}: {exc}") from exc
            return None
        return fit_dataset(card, ds)

    def publish(ev: Evaluation, test_ds) -> Evaluation:
        ev.metrics["dataset"] = name
        if test_ds.extras.get("class_mapping"):
            ev.metrics["class_mapping"] = test_ds.extras["class_mapping"]
        for fname, data in ev.files(card).items():
            atomic_write_bytes(folder / fname, data)
        if card.imported:  # a model made elsewhere: its card carries what was measured here, and on what
            card.metrics = ev.metrics
            atomic_write_json(folder / CARD_FILE, card.to_dict())
        return ev

    if found is None:
        test = split("test")
        return publish(compute(model, card, test, split("train"), split("val"), progress), test), card
    train_ds, val_ds = split("train"), split("val")  # predictions saved, OOD statistics missing: add them only
    if train_ds is not None and val_ds is not None and len(val_ds):
        test = split("test")
        return publish(compute(model, card, test, train_ds, val_ds, progress, proba=found.proba), test), card
    return found, card


def confusion_figure(card: ModelCard, normalise: bool = False):
    """The test confusion matrix as a matplotlib figure (for MLflow's PNG artifact and the report)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from sklearn.metrics import ConfusionMatrixDisplay

    cm = np.asarray(card.metrics.get("confusion_matrix", []), dtype=float)
    if cm.size == 0:
        raise CheckpointError(f"model {card.id} has no confusion matrix")
    if normalise:
        cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(1.2 + 0.9 * len(card.classes), 1.0 + 0.9 * len(card.classes)))
    ax = fig.add_subplot()
    ConfusionMatrixDisplay(cm, display_labels=card.classes).plot(ax=ax, colorbar=False, values_format=".2f" if normalise else ".0f")
    ax.set_title(f"{card.id}: test confusion matrix")
    fig.tight_layout()
    return fig
