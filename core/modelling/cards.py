"""Model cards: what travels with a model's weights (dataset, architecture, classes, preprocessing, metrics, the
weights' SHA-256), and the checks made on them before weights are used. Read by checkpoints and by the ImageNet
models alike (:mod:`core.modelling.checkpoints`, :mod:`core.modelling.pretrained`).
"""
from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

import torch

from core.errors import CheckpointError

CARD_FILE = "card.json"
WEIGHTS_FILE = "weights.pt"
FORMAT_VERSION = 1


@dataclass
class ModelCard:
    """Everything needed to rebuild, preprocess for, and describe a trained model."""

    id: str
    dataset: str
    arch: str
    classes: list[str]
    input_size: int
    channels: int
    mean: list[float]
    std: list[float]
    target_layer: str
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    dataset_options: dict[str, Any] = field(default_factory=dict)
    #: pretrained weights' own preprocessing: the shorter side resized to this before the centre crop (0: to
    #: ``input_size``, i.e. no margin), with this interpolation
    resize_size: int = 0
    interpolation: str = "bilinear"
    created: str = ""
    weights_sha256: str = ""
    format_version: int = FORMAT_VERSION

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelCard":
        """A card from its JSON, every field checked (a bad card is a precise :class:`CheckpointError`, never a
        traceback or a silently misread model)."""
        names = {f.name for f in fields(cls)}
        required = ["id", "dataset", "arch", "classes", "input_size", "channels", "mean", "std", "target_layer"]
        missing = [k for k in required if k not in d]
        if missing:
            raise CheckpointError(f"model card lacks {', '.join(missing)}")
        card = cls(**{k: v for k, v in d.items() if k in names})
        card.validate()
        return card

    def validate(self) -> None:
        def bad(field_name: str, what: str) -> CheckpointError:
            return CheckpointError(f"model card field {field_name!r} must be {what}, got {getattr(self, field_name)!r}")

        def whole(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def numbers(v: Any, n: int) -> bool:
            return (isinstance(v, list) and len(v) == n and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                               and math.isfinite(x) for x in v))

        for name in ("id", "dataset", "arch", "target_layer"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise bad(name, "a non-empty string")
        if not (isinstance(self.classes, list) and len(self.classes) >= 2 and all(isinstance(c, str) for c in self.classes)):
            raise bad("classes", "a list of at least two class names")
        if not (whole(self.channels) and self.channels in (1, 3)):
            raise bad("channels", "1 or 3")
        if not (whole(self.input_size) and 8 <= self.input_size <= 1024):
            raise bad("input_size", "a whole number of pixels in 8..1024")
        if not (whole(self.resize_size) and (self.resize_size == 0 or self.input_size <= self.resize_size <= 2048)):
            raise bad("resize_size", "0 or a whole number of pixels from input_size to 2048")
        if self.interpolation not in ("bilinear", "bicubic", "nearest"):
            raise bad("interpolation", "bilinear, bicubic or nearest")
        if not numbers(self.mean, self.channels):
            raise bad("mean", f"{self.channels} finite numbers (one per channel)")
        if not (numbers(self.std, self.channels) and all(x > 0 for x in self.std)):
            raise bad("std", f"{self.channels} positive finite numbers (one per channel)")
        for name in ("training", "metrics", "dataset_options"):
            if not isinstance(getattr(self, name), dict):
                raise bad(name, "an object")
        if not isinstance(self.weights_sha256, str) or not isinstance(self.created, str):
            raise bad("weights_sha256" if not isinstance(self.weights_sha256, str) else "created", "a string")
        trained = self.training.get("size")
        if whole(trained) and trained != self.input_size:  # every face would run it at a size it never saw
            raise CheckpointError(f"model card says input_size {self.input_size} px but the model was trained at "
                                  f"{trained} px (training.size): set input_size to {trained} in card.json, or retrain")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def from_torchvision(self) -> bool:
        """One of torchvision's ImageNet classifiers (:mod:`core.modelling.pretrained`): no test metrics of ours, its
        published accuracy instead, and no training data here."""
        return self.training.get("source") == "torchvision"


#: digests already computed, by (file, inode, size, mtime): the pickers check every model on each page run
#: (broken_models), which must not re-read every weights file each time
_digests: dict[tuple, str] = {}


def file_sha256(path: Path) -> str:
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _digests:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _digests[key] = h.hexdigest()
    return _digests[key]


#: a model id is a folder name: letters, digits, ``-``, ``_`` and ``.``, no leading dot, at most 100 characters
MODEL_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")


def validate_model_id(model_id: str) -> str:
    """``model_id`` if it is a safe folder name, else :class:`CheckpointError` saying what is allowed."""
    if not isinstance(model_id, str) or not MODEL_ID.fullmatch(model_id):
        raise CheckpointError(f"model id {model_id!r} is not allowed: use 1-100 letters, digits, '-', '_' or '.', "
                              "not starting with '.' (it names a folder inside the models folder)")
    return model_id


def check_dataset_fits(card: ModelCard, dataset_name: str, classes: Sequence[str], channels: int) -> None:
    """Refuse, with one message, a dataset whose images or classes the model was not trained on."""
    problems = []
    if channels != card.channels:
        problems.append(f"{channels}-channel images (the model takes {card.channels})")
    if list(classes) != list(card.classes):
        problems.append(f"classes {', '.join(classes)} (the model knows {', '.join(card.classes)})")
    if problems:
        raise CheckpointError(f"model {card.id} was trained on {card.dataset}; {dataset_name} has "
                              + " and ".join(problems) + ". Pick a model trained on this dataset, or train one")


def state_mismatch(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> str:
    """What keeps ``state`` from loading strictly into a module whose state dict is ``own`` ("" when it fits):
    missing and unexpected tensors and shape mismatches, each counted with a first example."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    parts = []
    if missing:
        parts.append(f"missing {len(missing)} tensors (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})")
    if mismatched:
        k = mismatched[0]
        parts.append(f"{len(mismatched)} shape mismatches (e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})")
    return "; ".join(parts)
