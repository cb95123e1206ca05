"""Out-of-distribution scores: how unlike a model's training data an input is, from the model's own features.

The score follows Lee et al. (NeurIPS 2018): the Mahalanobis distance of features to the nearest class mean of
the training split, with one shared covariance per layer (Ledoit-Wolf shrinkage, scikit-learn), over an
ensemble of layers. The features of a layer are the per-channel mean and standard deviation of its output
(every block of the network) and the penultimate features (the input of the last linear layer). Early layers
see image statistics (texture, noise, colour), which the penultimate layer of a small model can map close to a
class mean: a photograph is then as "near" a shape as a shape is. Each layer's distance is standardised by its
validation distribution and the score is the largest standardised distance. It is calibrated on the
validation split: the threshold is the 95th percentile of the validation scores, so about 5% of
in-distribution images are flagged by construction.

Written here rather than taken from a library: the OOD packages (pytorch-ood, OpenOOD) are not in our
dependency set, and the method is a few lines of linear algebra on scikit-learn's covariance estimator.
The statistics live in ``ood.npz`` beside the model's weights (read with ``allow_pickle=False``).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.errors import CheckpointError
from core.io import atomic_write_bytes

OOD_FILE = "ood.npz"
QUANTILE = 0.95
MAX_FIT_IMAGES = 20_000


def _last_linear(model: nn.Module) -> nn.Linear:
    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m
    if last is None:
        raise ValueError("the model has no linear layer to take penultimate features from")
    return last


def _blocks(model: nn.Module) -> list[nn.Module]:
    """The network's blocks (input side first) whose outputs are feature maps; the head is left out."""
    from core.modelling.architectures import Classifier, freezable_layers

    if not isinstance(model, Classifier):
        return []
    names = freezable_layers(model)[:-1]
    return [model.net.get_submodule(n) for n in names]


def _summary(t: torch.Tensor) -> torch.Tensor:
    """Per-channel mean and standard deviation of a (N, C, H, W) map or (N, T, C) token sequence."""
    if t.ndim == 4:
        flat = t.flatten(2)
    elif t.ndim == 3:
        flat = t.transpose(1, 2)
    else:
        return t.flatten(1)
    return torch.cat([flat.mean(-1), flat.std(-1, correction=0)], dim=1)  # 1x1 maps: std 0, not NaN


@torch.no_grad()
def features(model: nn.Module, images, batch_size: int = 256) -> list[np.ndarray]:
    """Features (N, D_l) of every layer of the ensemble, for images (a tensor in [0, 1] or an ArrayDataset),
    computed on a private replica of the model: the shared model gets no hook."""
    from core.modelling import sharing
    from core.modelling.prediction import model_device

    n = len(images)
    out: list[list[np.ndarray]] = []
    with sharing.replica(model) as rep:
        captured: dict[int, torch.Tensor] = {}
        handles = []
        blocks = _blocks(rep)
        for i, b in enumerate(blocks):
            handles.append(b.register_forward_hook(lambda m, inp, o, i=i: captured.__setitem__(i, _summary(o))))
        last = len(blocks)
        handles.append(_last_linear(rep).register_forward_hook(
            lambda m, inp, o: captured.__setitem__(last, inp[0].flatten(1))))
        try:
            dev = model_device(rep)
            for s in range(0, n, batch_size):
                if isinstance(images, torch.Tensor):
                    xb = images[s:s + batch_size]
                else:
                    xb = images.batch(np.arange(s, min(n, s + batch_size)))
                captured.clear()
                rep(xb.to(dev))
                out.append([captured[i].detach().double().cpu().numpy() for i in range(last + 1)])
        finally:
            for h in handles:
                h.remove()
    return [np.concatenate([b[i] for b in out]) for i in range(len(out[0]))] if out else []


@dataclass
class Layer:
    means: np.ndarray  # (K, D) class means of the training features
    precision: np.ndarray  # (D, D) inverse of the shared covariance
    centre: float  # mean and spread of the validation distances: each layer's distance is standardised
    spread: float

    def distances(self, feats: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each row to the nearest class mean."""
        diff = feats[:, None, :] - self.means[None, :, :]  # (N, K, D)
        d2 = np.einsum("nkd,de,nke->nk", diff, self.precision, diff)
        return np.sqrt(np.maximum(d2.min(axis=1), 0.0))


@dataclass
class OodDetector:
    layers: list[Layer]
    threshold: float  # scores above it are flagged
    val_scores: np.ndarray  # the calibration scores (for the rate checks)

    def scores_from(self, feats: list[np.ndarray]) -> np.ndarray:
        if len(feats) != len(self.layers):
            raise CheckpointError(f"OOD statistics are for {len(self.layers)} layers, the model gives {len(feats)}: "
                                  "recompute them with `python -m core evaluate`")
        z = [(ly.distances(f) - ly.centre) / ly.spread for ly, f in zip(self.layers, feats)]
        return np.max(np.stack(z), axis=0)

    def score(self, model: nn.Module, images) -> np.ndarray:
        return self.scores_from(features(model, images))

    def flags(self, model: nn.Module, images) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, flagged)`` for a batch of images."""
        s = self.score(model, images)
        return s, s > self.threshold

    # -- persistence -------------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        arrays = {"threshold": np.array(self.threshold), "val_scores": self.val_scores, "quantile": np.array(QUANTILE),
                  "n_layers": np.array(len(self.layers))}
        for i, ly in enumerate(self.layers):
            arrays.update({f"means_{i}": ly.means, f"precision_{i}": ly.precision,
                           f"norm_{i}": np.array([ly.centre, ly.spread])})
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    def save(self, folder: Path) -> None:
        atomic_write_bytes(Path(folder) / OOD_FILE, self.to_bytes())

    @classmethod
    def load(cls, folder: Path) -> "OodDetector | None":
        """The model's detector, or None when it has none yet (models trained before OOD scores existed)."""
        path = Path(folder) / OOD_FILE
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                layers = [Layer(z[f"means_{i}"], z[f"precision_{i}"], float(z[f"norm_{i}"][0]), float(z[f"norm_{i}"][1]))
                          for i in range(int(z["n_layers"]))]
                det = cls(layers, float(z["threshold"]), z["val_scores"])
        except Exception as exc:
            raise CheckpointError(f"{path} is not a readable OOD statistics file ({type(exc).__name__}); "
                                  f"recompute it with `python -m core evaluate --model {Path(folder)}`") from exc
        ok = det.layers and np.isfinite(det.threshold) and all(
            ly.means.ndim == 2 and ly.precision.shape == (ly.means.shape[1],) * 2 and ly.spread > 0 for ly in det.layers)
        if not ok:
            raise CheckpointError(f"{path} has inconsistent statistics; recompute them with `python -m core evaluate`")
        return det


def fit(model: nn.Module, train_ds, val_ds, max_images: int = MAX_FIT_IMAGES, seed: int = 0) -> OodDetector:
    """Per layer: class means and shared covariance from (up to ``max_images`` of) the training split, and the
    standardisation of its distances on the validation split; the threshold is the validation split's 95th
    percentile of the combined score."""
    from sklearn.covariance import LedoitWolf

    idx = np.arange(len(train_ds))
    if len(idx) > max_images:
        idx = np.sort(np.random.default_rng(seed).choice(len(idx), max_images, replace=False))
    train_feats = features(model, _Subset(train_ds, idx))
    val_feats = features(model, val_ds)
    labels = train_ds.labels[idx]
    classes = np.unique(labels)
    layers = []
    for feats, vfeats in zip(train_feats, val_feats):
        means = np.stack([feats[labels == c].mean(axis=0) for c in classes])
        centred = feats - means[np.searchsorted(classes, labels)]
        precision = LedoitWolf(assume_centered=True).fit(centred).precision_
        layer = Layer(means, precision, 0.0, 1.0)
        d = layer.distances(vfeats)
        layer.centre, layer.spread = float(d.mean()), float(max(d.std(), 1e-6))
        layers.append(layer)
    det = OodDetector(layers, float("inf"), np.zeros(0))
    det.val_scores = det.scores_from(val_feats)
    det.threshold = float(np.quantile(det.val_scores, QUANTILE))
    return det


class _Subset:
    """A view of some images of an ArrayDataset, batched on demand (a large split is never copied as floats)."""

    def __init__(self, ds, idx: np.ndarray) -> None:
        self.ds, self.idx = ds, idx

    def __len__(self) -> int:
        return len(self.idx)

    def batch(self, positions: np.ndarray) -> torch.Tensor:
        return self.ds.batch(self.idx[np.asarray(positions)])
