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
from core.modelling.cards import ModelCard
from core.datasets import load_dataset
from core.errors import CheckpointError, DatasetError
from core.io import atomic_write_bytes
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


def _read(folder: Path, card: ModelCard) -> Evaluation | None:
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
    return Evaluation(y, p, saved["metrics"], {k: saved[k] for k in ("curves", "reliability") if k in saved},
                      OodDetector.load(folder))


def load_or_compute(model_path, model=None, data_root: str | None = None,
                    progress: Callable[[str], None] | None = None) -> tuple[Evaluation, ModelCard]:
    """The model's saved evaluation, or compute it (test predictions, metrics and, when the train and val splits
    are available, OOD statistics) and write it beside the model atomically.

    Raises :class:`DatasetError` (saying what is missing) when the model's test split is not available."""
    from core.modelling.checkpoints import read_card
    from core.modelling.data_roots import locate
    from core.modelling.cards import check_dataset_fits

    folder = resolve_model_path(model_path)
    if model is None:
        model, card = load_model(folder, device="cpu")
    else:
        card = read_card(folder)
    found = _read(folder, card)
    if found is not None and found.ood is not None:
        return found, card
    root = locate(card.dataset, given=data_root, card=card)[0]

    def split(name: str):
        try:
            ds = load_dataset(card.dataset, name, size=card.input_size, root=root)
        except DatasetError as exc:
            if name == "test":
                raise DatasetError(f"cannot evaluate {card.id}: {exc}") from exc
            return None
        check_dataset_fits(card, card.dataset, ds.classes, ds.images.shape[3])
        return ds

    if found is None:
        found = compute(model, card, split("test"), split("train"), split("val"), progress)
        for fname, data in found.files(card).items():
            atomic_write_bytes(folder / fname, data)
        return found, card
    train_ds, val_ds = split("train"), split("val")  # predictions saved, OOD statistics missing: add them only
    if train_ds is not None and val_ds is not None and len(val_ds):
        redo = compute(model, card, split("test"), train_ds, val_ds, progress, proba=found.proba)
        for fname, data in redo.files(card).items():
            atomic_write_bytes(folder / fname, data)
        return redo, card
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
