"""Imported models on disk: saved like every model (one atomic folder switch,
:func:`core.modelling.checkpoints.publish_model`) with the model's own file kept in its format; loaded again through
its format's reader (:func:`core.importers.formats.load`) and wrapped and probed as at import (:func:`wrap`)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from torch import nn

from core.errors import CheckpointError
from core.importers.probe import probe
from core.importers.wrapper import ImportedClassifier
from core.io import atomic_open
from core.modelling.cards import ModelCard


def copy_into(source: Path, folder: Path, name: str) -> str:
    """Copy a file into a model folder being written (fsynced; the folder is switched into place after)."""
    target = folder / name
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(source, "rb") as src, atomic_open(target, "wb") as dst:
        shutil.copyfileobj(src, dst, length=1 << 20)
    return name


def wrap(net: nn.Module, card: ModelCard) -> ImportedClassifier:
    """``net`` wrapped as its card says, with its traits and CAM layers found by running it; the card's CAM layer
    must be one of them."""
    mean, std = card.input_normalisation()
    model = ImportedClassifier(net, mean, std, channel_order=card.channel_order,
                               layout=card.source.get("layout", "nchw"), output=card.output,
                               fixed_batch=card.source.get("fixed_batch"))
    findings = probe(model, (card.channels, card.input_size, card.input_size))
    model.traits, model.cam_layers, model.trait_notes = findings.traits, findings.cam_layers, findings.notes
    if findings.cam_layers:
        if card.target_layer not in findings.cam_layers:
            raise CheckpointError(f"model card's target_layer {card.target_layer!r} is not a layer CAM methods can "
                                  f"weight in {card.id}; its last such layers: {', '.join(findings.cam_layers[-4:])}: "
                                  "fix target_layer in card.json")
        model.target_layer = card.target_layer
    return model.eval()


def model_exists(model_id: str, models_dir: str | os.PathLike | None = None) -> bool:
    from core import config

    return (Path(models_dir) if models_dir else config.models_dir()).joinpath(model_id).exists()
