"""Classification metrics (scikit-learn) for model cards, the Performance page and the CLI.

Everything is computed from ``(y_true, proba)``: the true labels of a split and the model's class
probabilities for it, so a model's predictions are computed once and every number and curve is derived
from them.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

#: the headline numbers, in the order the Performance page and the CLI show them
HEADLINE = ("accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1",
            "weighted_precision", "weighted_recall", "weighted_f1", "roc_auc", "ece")


def _check(y_true: np.ndarray, proba: np.ndarray, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(np.int64).reshape(-1)
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape != (len(y), len(classes)):
        raise ValueError(f"proba must be ({len(y)}, {len(classes)}), got {p.shape}")
    if len(y) == 0:
        raise ValueError("no predictions to evaluate")
    if not np.isfinite(p).all():
        raise ValueError("proba holds NaN or infinite values")
    if y.min() < 0 or y.max() >= len(classes):
        raise ValueError(f"labels must be in 0..{len(classes) - 1}")
    return y, p


def roc_auc(y: np.ndarray, p: np.ndarray) -> float | None:
    """ROC AUC: binary uses the positive class; more classes average one-vs-rest (macro). None when a class
    is absent from ``y`` (the AUC is undefined)."""
    labels = list(range(p.shape[1]))
    if len(np.unique(y)) < p.shape[1]:
        return None  # scikit-learn raises or, in recent versions, warns and returns NaN
    try:
        if p.shape[1] == 2:
            auc = float(roc_auc_score(y, p[:, 1]))
        else:
            auc = float(roc_auc_score(y, p, multi_class="ovr", average="macro", labels=labels))
    except ValueError:
        return None
    return auc if np.isfinite(auc) else None


def reliability(y_true: np.ndarray, proba: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Reliability diagram data and the expected calibration error (Guo et al. 2017): the top-class
    confidence in ``bins`` equal-width bins, each bin's accuracy, and ECE = sum(n_b / n * |acc_b - conf_b|).

    Written here because scikit-learn's ``calibration_curve`` is binary-only and has no ECE."""
    y, p = np.asarray(y_true).reshape(-1), np.asarray(proba, dtype=np.float64)
    conf, pred = p.max(axis=1), p.argmax(axis=1)
    right = (pred == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)  # (lo, hi] bins; 0 goes to the first
    count = np.bincount(which, minlength=bins)
    conf_sum = np.bincount(which, weights=conf, minlength=bins)
    acc_sum = np.bincount(which, weights=right, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(count > 0, conf_sum / count, np.nan)
        accuracy = np.where(count > 0, acc_sum / count, np.nan)
    ece = float(np.nansum(count / len(y) * np.abs(accuracy - mean_conf)))
    return {"edges": edges.tolist(), "count": count.tolist(), "confidence": mean_conf.tolist(),
            "accuracy": accuracy.tolist(), "ece": ece}


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Headline numbers, their chance levels, per-class precision / recall / F1 / support and the confusion
    matrix, from the true labels and the predicted probabilities.

    Chance levels: ``chance_accuracy`` is what always answering the most frequent class scores on this split;
    ``chance_balanced_accuracy`` is 1 / number of classes (any constant or random answer).
    """
    y, p = _check(y_true, proba, classes)
    pred = p.argmax(axis=1)
    labels = list(range(len(classes)))
    prec, rec, f1, support = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    out: dict[str, Any] = {
        "n": int(len(y)),
        "accuracy": float(accuracy_score(y, pred)),
        # balanced accuracy = mean recall over the classes present; sklearn warns (and skips) absent ones
        "balanced_accuracy": float(np.mean(rec[support > 0])),
        "roc_auc": roc_auc(y, p),
        "ece": reliability(y, p)["ece"],
        "chance_accuracy": float(np.bincount(y, minlength=len(classes)).max() / len(y)),
        "chance_balanced_accuracy": 1.0 / len(classes),
    }
    for avg in ("macro", "weighted"):
        a_prec, a_rec, a_f1, _ = precision_recall_fscore_support(y, pred, labels=labels, average=avg, zero_division=0)
        out.update({f"{avg}_precision": float(a_prec), f"{avg}_recall": float(a_rec), f"{avg}_f1": float(a_f1)})
    out["per_class"] = {
        c: {"precision": float(prec[i]), "recall": float(rec[i]), "f1-score": float(f1[i]), "support": int(support[i])}
        for i, c in enumerate(classes)
    }
    out["confusion_matrix"] = confusion_matrix(y, pred, labels=labels).tolist()
    return out


def curves(y_true: np.ndarray, proba: np.ndarray, classes: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """One-vs-rest ROC and precision-recall curves per class, each with its area (ROC AUC, average
    precision); classes absent from ``y_true`` have no curve (their areas are undefined)."""
    y, p = _check(y_true, proba, classes)
    roc, pr = [], []
    for i, c in enumerate(classes):
        pos = (y == i).astype(int)
        if pos.min() == pos.max():
            continue
        fpr, tpr, _ = roc_curve(pos, p[:, i])
        precision, recall, _ = precision_recall_curve(pos, p[:, i])
        roc.append({"class": c, "fpr": fpr.tolist(), "tpr": tpr.tolist(), "auc": float(roc_auc_score(pos, p[:, i]))})
        pr.append({"class": c, "recall": recall.tolist(), "precision": precision.tolist(),
                   "ap": float(average_precision_score(pos, p[:, i])), "prevalence": float(pos.mean())})
    return {"roc": roc, "pr": pr}


def confident_mistakes(y_true: np.ndarray, proba: np.ndarray, true_class: int | None = None,
                       predicted_class: int | None = None, limit: int = 24) -> np.ndarray:
    """Indices of misclassified images, most confident mistake first, optionally only those of one true and/or
    one predicted class."""
    y, p = np.asarray(y_true).reshape(-1), np.asarray(proba)
    pred = p.argmax(axis=1)
    keep = pred != y
    if true_class is not None:
        keep &= y == true_class
    if predicted_class is not None:
        keep &= pred == predicted_class
    idx = np.flatnonzero(keep)
    order = np.argsort(-p[idx, pred[idx]], kind="stable")
    return idx[order][:limit]
