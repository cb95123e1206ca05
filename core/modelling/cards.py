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
    #: what the model's own first layer expects, for models made elsewhere (ours take RGB in [0, 1] and normalise
    #: inside): its channel order, and the pixel range its ``mean`` / ``std`` are given in (1: [0, 1]; 255: [0, 255])
    channel_order: str = "rgb"
    pixel_range: int = 1
    #: what the model returns: "logits", or "probabilities" (it ends in a softmax that could not be taken off: the
    #: methods then explain the log-probability, whose softmax is the same)
    output: str = "logits"
    #: where an imported model came from (empty for models trained here): ``format``, the source file's ``name`` and
    #: ``sha256``, the ``model_file`` kept in the model's folder, where each card value came from (``detected``),
    #: and ``notes`` on what the import assumed or changed (see :mod:`core.importers`)
    source: dict[str, Any] = field(default_factory=dict)

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
        if self.channel_order not in ("rgb", "bgr"):
            raise bad("channel_order", "rgb or bgr")
        if not (whole(self.pixel_range) and self.pixel_range in (1, 255)):
            raise bad("pixel_range", "1 (pixels in [0, 1]) or 255 (pixels in [0, 255])")
        if self.output not in ("logits", "probabilities"):
            raise bad("output", "logits or probabilities")
        if not numbers(self.mean, self.channels):
            raise bad("mean", f"{self.channels} finite numbers (one per channel)")
        if not (numbers(self.std, self.channels) and all(x > 0 for x in self.std)):
            raise bad("std", f"{self.channels} positive finite numbers (one per channel)")
        if any(not 0 <= m <= self.pixel_range for m in self.mean):  # e.g. 104, 117, 123 given for pixels in [0, 1]
            hint = "; a mean in 0..255 needs pixel_range 255" if self.pixel_range == 1 and max(self.mean) <= 255 else ""
            raise CheckpointError(f"model card's mean {self.mean} is outside the pixel range [0, {self.pixel_range}]{hint}")
        if not isinstance(self.source, dict) or (self.source and not isinstance(self.source.get("format"), str)):
            raise bad("source", "an object with the imported model's format")
        kept = self.source.get("model_file", WEIGHTS_FILE)
        if not (isinstance(kept, str) and kept and not Path(kept).is_absolute() and ".." not in Path(kept).parts):
            raise bad("source", "an object whose model_file is a path inside the model's folder")
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
    def imported(self) -> bool:
        """Made elsewhere and imported (:mod:`core.importers`): no training record, no metric it was not measured on."""
        return bool(self.source)

    @property
    def model_file(self) -> str:
        """The file in the model's folder that ``weights_sha256`` is the digest of."""
        return self.source.get("model_file", WEIGHTS_FILE)

    def input_normalisation(self) -> tuple[list[float], list[float]]:
        """``mean`` and ``std`` in [0, 1] units and RGB (input) order: what a model's normalising layer subtracts and
        divides by, before the channels are put in the model's own order."""
        mean = [m / self.pixel_range for m in self.mean]
        std = [s / self.pixel_range for s in self.std]
        if self.channel_order == "bgr":
            mean, std = mean[::-1], std[::-1]
        return mean, std

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


def _name_key(name: str) -> str:
    return " ".join(name.replace("_", " ").replace("-", " ").casefold().split())


def class_mapping(model_classes: Sequence[str], data_classes: Sequence[str]) -> list[int] | None:
    """For each dataset class, the index of the model's class of the same name (case, spaces, ``-`` and ``_``
    ignored), or ``None`` when the names differ as sets (a model made elsewhere may order its classes otherwise)."""
    model_keys = [_name_key(c) for c in model_classes]
    data_keys = [_name_key(c) for c in data_classes]
    if len(set(model_keys)) != len(model_keys) or sorted(model_keys) != sorted(data_keys):
        return None
    return [model_keys.index(k) for k in data_keys]


def mapping_note(card: ModelCard, data_classes: Sequence[str]) -> str:
    """"dataset class -> model class" for a dataset whose classes the model names in another order ("" when the
    order is the same)."""
    order = class_mapping(card.classes, data_classes)
    if order is None or order == list(range(len(order))):
        return ""
    return "class order mapped: " + ", ".join(f"{d} (dataset #{i}) → {card.classes[j]} (model #{j})"
                                               for i, (d, j) in enumerate(zip(data_classes, order)))


def check_dataset_fits(card: ModelCard, dataset_name: str, classes: Sequence[str], channels: int) -> None:
    """Refuse, with one message, a dataset whose images or classes the model cannot take: other class names, or
    colour images for a one-channel model (one-channel images for a colour model are repeated over its channels;
    classes the model names in another order are mapped, see :func:`fit_dataset`)."""
    problems = []
    other_classes = list(classes) != list(card.classes) and class_mapping(card.classes, classes) is None
    if channels != card.channels and (other_classes or not (channels == 1 and card.channels == 3)):
        problems.append(f"{channels}-channel images (the model takes {card.channels})")
    if other_classes:
        problems.append(f"classes {', '.join(classes)} (the model knows {', '.join(card.classes)})")
    if problems:
        raise CheckpointError(f"model {card.id} was trained on {card.dataset}; {dataset_name} has "
                              + " and ".join(problems) + ". Pick a model trained on this dataset, or train one")


def fit_dataset(card: ModelCard, ds: Any) -> Any:
    """``ds`` as ``card``'s model sees it: the same dataset when it fits as it is; else a view whose labels are the
    model's class indices (classes matched by name, :func:`class_mapping`) and whose one-channel images are repeated
    over the model's three, with the mapping in ``extras["class_mapping"]``. Raises :class:`CheckpointError` (see
    :func:`check_dataset_fits`) when the model cannot take it."""
    from dataclasses import replace

    import numpy as np

    channels = ds.images.shape[-1]
    check_dataset_fits(card, ds.info.name, ds.classes, channels)
    if list(ds.classes) == list(card.classes) and channels == card.channels:
        return ds
    order = np.asarray(class_mapping(card.classes, ds.classes) or range(len(card.classes)), dtype=np.int64)
    images = np.repeat(ds.images, 3, axis=-1) if channels == 1 and card.channels == 3 else ds.images
    extras = {**ds.extras, "class_mapping": mapping_note(card, ds.classes)}
    return replace(ds, info=replace(ds.info, classes=tuple(card.classes), channels=card.channels), images=images,
                   labels=order[ds.labels], extras=extras)


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
