"""The check before an imported model is saved: run it on real images (a dataset's, a folder's, uploads) and say what
it predicts, and when the predictions look like a card that does not fit the model.

Warned of, with the likely causes: logits that are not finite; every image, or nearly every one, predicted as one
class; and, on labelled images whose class names match the model's, a balanced accuracy at chance level. These are
what a wrong mean / std or pixel range, BGR given as RGB, or classes named in the wrong order do to a good model.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from core.errors import CheckpointError, ImageError
from core.modelling.cards import ModelCard, class_mapping

#: a class predicted for at least this share of the images is "nearly every image"
ONE_CLASS_SHARE = 0.9
#: images needed before a share or an accuracy is judged
MIN_IMAGES = 10
#: balanced accuracy within this of 1 / classes is "at chance"
CHANCE_MARGIN = 0.1
CAUSES = ("likely causes: a wrong mean / std or pixel range (the model then sees inputs unlike its training images), "
          "BGR images given as RGB (or the reverse), or a wrong input size")


@dataclass
class CheckResult:
    """What the model predicted on the check's images, and what looks wrong."""

    n: int
    predicted: list[int]
    counts: dict[str, int]
    labelled: int = 0
    accuracy: float | None = None
    balanced_accuracy: float | None = None
    warnings: list[str] = field(default_factory=list)
    source: str = ""

    def lines(self) -> list[str]:
        top = sorted(self.counts.items(), key=lambda kv: -kv[1])
        out = [f"checked on {self.n} image{'s' * (self.n != 1)} ({self.source}): predicted "
               + ", ".join(f"{c} {k}" for c, k in top[:10]) + (" …" if len(top) > 10 else "")]
        if self.accuracy is not None:
            out.append(f"accuracy {self.accuracy:.1%}, balanced accuracy {self.balanced_accuracy:.1%} on {self.labelled} "
                       "labelled images")
        return out + [f"WARNING: {w}" for w in self.warnings]


def check(model: nn.Module, card: ModelCard, images: torch.Tensor, labels: Sequence[int] | None = None,
          source: str = "") -> CheckResult:
    """Predictions of ``model`` on ``images`` (N, C, H, W) in [0, 1], with ``labels`` (the model's class indices)
    where known, and the warnings they call for."""
    from core.modelling.prediction import as_images, logits, model_device

    if len(images) == 0:
        raise CheckpointError("the check has no images to run the model on")
    x = as_images(images, model_device(model), channels=card.channels)
    out = logits(model, x).float().cpu()
    finite = torch.isfinite(out).all(dim=1)
    predicted = out.argmax(dim=1).tolist()
    counts = Counter(card.classes[p] for p, ok in zip(predicted, finite.tolist()) if ok)
    result = CheckResult(len(x), predicted, dict(counts), source=source)
    bad = int((~finite).sum())
    if bad:
        result.warnings.append(f"the model's outputs are not finite (NaN or inf) for {bad} of {len(x)} images: {CAUSES}")
    k = len(card.classes)
    label_share = 0.0
    if labels is not None:
        y = np.asarray(labels, dtype=np.int64)
        p = np.asarray(predicted)
        result.labelled = len(y)
        result.accuracy = float((p == y).mean())
        present = [c for c in range(k) if (y == c).any()]
        result.balanced_accuracy = float(np.mean([(p[y == c] == c).mean() for c in present]))
        label_share = max(np.bincount(y, minlength=k)) / len(y)
        if len(present) >= 2 and len(y) >= MIN_IMAGES and result.balanced_accuracy <= 1 / k + CHANCE_MARGIN:
            result.warnings.append(
                f"balanced accuracy {result.balanced_accuracy:.1%} on {len(y)} labelled images is about chance "
                f"({1 / k:.1%} for {k} classes): {CAUSES}, or class names not in the order of the model's outputs")
    if counts and not bad:
        name, top = counts.most_common(1)[0]
        share = top / len(x)
        if len(x) >= 2 and top == len(x) and label_share < ONE_CLASS_SHARE:
            result.warnings.append(f"every one of the {len(x)} images is predicted as {name!r}: {CAUSES}")
        elif len(x) >= MIN_IMAGES and share >= ONE_CLASS_SHARE and label_share < ONE_CLASS_SHARE:
            result.warnings.append(f"{top} of {len(x)} images ({share:.0%}) are predicted as {name!r}: {CAUSES}")
    return result


def _read(paths: Sequence[Path], card: ModelCard) -> tuple[torch.Tensor, list[int]]:
    from core.datasets.images import open_image, preprocess_for

    xs, kept = [], []
    for i, p in enumerate(paths):
        try:
            xs.append(preprocess_for(open_image(p), card)[0])
            kept.append(i)
        except ImageError:
            continue
    if not xs:
        raise CheckpointError("none of the check's images could be read")
    return torch.stack(xs), kept


def folder_images(card: ModelCard, folder: str | Path, n: int = 64, seed: int = 0
                  ) -> tuple[torch.Tensor, list[int] | None, str]:
    """Up to ``n`` images of a folder (a seeded sample), as the model takes them, with their labels in the model's
    class order when the folder's class folders are the model's classes (in any order), and a description."""
    from core.datasets.folders import images_in

    root = Path(folder).expanduser()
    paths, classes = images_in(root)
    pick = np.sort(np.random.default_rng(seed).choice(len(paths), size=min(n, len(paths)), replace=False))
    names = sorted({c for c in classes if c is not None})
    order = class_mapping(card.classes, names) if names else None
    x, kept = _read([paths[i] for i in pick], card)
    labels = [order[names.index(classes[pick[i]])] for i in kept] if order is not None else None
    what = (f"{len(kept)} images of {root.name}/, labelled by its class folders" if labels is not None else
            f"{len(kept)} images of {root.name}/" + (f" (its class folders {', '.join(names)} are not the model's "
                                                      "classes: unlabelled)" if names else ""))
    return x, labels, what


def dataset_images(card: ModelCard, name: str, split: str = "test", root: str | None = None, n: int = 64,
                   seed: int = 0) -> tuple[torch.Tensor, list[int], str]:
    """Up to ``n`` images of a registered dataset's split (seeded), labels mapped to the model's class order."""
    from core.datasets import load_dataset
    from core.modelling.cards import fit_dataset

    ds = fit_dataset(card, load_dataset(name, split=split, size=card.input_size, root=root))
    pick = np.sort(np.random.default_rng(seed).choice(len(ds), size=min(n, len(ds)), replace=False))
    return ds.batch(pick), ds.labels[pick].tolist(), f"{len(pick)} images of {ds.info.title}, {split} split"


def upload_images(card: ModelCard, blobs: Sequence[bytes]) -> tuple[torch.Tensor, None, str]:
    """Uploaded image files, as the model takes them (unlabelled)."""
    from core.datasets.images import preprocess_for, read_upload

    xs = [preprocess_for(read_upload(b), card)[0] for b in blobs]
    if not xs:
        raise CheckpointError("upload at least one image to check the model on")
    return torch.stack(xs), None, f"{len(xs)} uploaded image{'s' * (len(xs) != 1)}"
