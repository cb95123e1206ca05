"""Model checkpoints: ``models/<id>/weights.pt`` (a plain state dict) + ``models/<id>/card.json``.

Weights are only ever read with ``torch.load(..., weights_only=True)``; the card records their
SHA-256 so a corrupt or swapped file is detected before it is used. Saving is atomic: the whole
folder is written under a temporary name and renamed into place.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from core import config
from core.registry import Registry
from core.modelling.architectures import Classifier, build_model
from core.errors import CheckpointError, UnknownNameError
from core.io import atomic_write_json, atomic_write_with, shared_mode

from core.modelling.cards import CARD_FILE, WEIGHTS_FILE, ModelCard, file_sha256, state_mismatch, validate_model_id
from core.modelling.pretrained import IMAGENET, imagenet_arch, imagenet_archs, imagenet_card, imagenet_id, load_imagenet


def resolve_model_path(model: str | os.PathLike) -> Path:
    """A model folder path, or a bare id looked up under the models folder."""
    p = Path(model)
    if p.is_dir() or p.is_absolute() or len(p.parts) > 1:
        return p
    return config.models_dir() / p


def save_model(model: Classifier, card: ModelCard, models_dir: str | os.PathLike | None = None,
               extra_files: Callable[[ModelCard], dict[str, bytes]] | None = None) -> Path:
    """Write ``<models_dir>/<card.id>/`` atomically and return its path. Replaces an existing model of that id.

    ``extra_files(card)`` (called once the card holds the weights' digest) gives more files to publish with the
    model in the same switch, e.g. its test predictions and metrics."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}

    def write(folder: Path) -> str:
        atomic_write_with(folder / WEIGHTS_FILE, lambda fh: torch.save(state, fh))
        return WEIGHTS_FILE

    return publish_model(card, write, models_dir, extra_files)


def publish_model(card: ModelCard, write: Callable[[Path], str], models_dir: str | os.PathLike | None = None,
                  extra_files: Callable[[ModelCard], dict[str, bytes]] | None = None) -> Path:
    """The one way a model folder appears: ``write(folder)`` writes the model's file(s) into a new hidden folder and
    names the one whose digest the card records; the card is written beside it, and the folder is switched into
    place as ``<models_dir>/<card.id>/`` (replacing a model of that id). A kill at any point leaves the old model or
    the new one, never half of either (:func:`recover`)."""
    validate_model_id(card.id)
    root = Path(models_dir) if models_dir else config.models_dir()
    root.mkdir(parents=True, exist_ok=True)
    final = root / card.id
    if final.resolve().parent != root.resolve():  # a second line of defence: never write outside the models folder
        raise CheckpointError(f"model id {card.id!r} would be saved outside {root}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{card.id}.new-{os.getpid()}-", dir=root))  # the pid lets recover() clean up
    try:
        tmp.chmod(shared_mode(directory=True))
        kept = write(tmp)
        if kept != card.model_file:
            raise CheckpointError(f"the model's file is {kept}, but its card names {card.model_file}")
        card.weights_sha256 = file_sha256(tmp / kept)
        card.created = card.created or datetime.now(timezone.utc).isoformat(timespec="seconds")
        atomic_write_json(tmp / CARD_FILE, card.to_dict())
        for name, data in (extra_files(card) if extra_files else {}).items():
            if Path(name).name != name or name in (CARD_FILE, kept):
                raise CheckpointError(f"extra model file name {name!r} is not allowed")
            atomic_write_with(tmp / name, lambda fh, data=data: fh.write(data))
        old = None
        if final.exists():
            old = root / f".{card.id}.old-{os.getpid()}"
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _imagenet(path: Path) -> str | None:
    """The architecture when ``path`` names one of torchvision's ImageNet models (``imagenet-resnet50``, no folder)."""
    return imagenet_arch(path.name) if not path.exists() else None


def read_card(path: str | os.PathLike) -> ModelCard:
    path = resolve_model_path(path)
    if (arch := _imagenet(path)) is not None:
        return imagenet_card(arch)
    card_path = path / CARD_FILE
    if not card_path.is_file() and path.name and recover(path.parent):  # a kill mid-replacement: put it back
        card_path = path / CARD_FILE
    if not card_path.is_file():
        raise CheckpointError(f"No model at {path}: {CARD_FILE} is missing")
    try:
        data = json.loads(card_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"Model card {card_path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"Model card {card_path} is not a JSON object")
    return ModelCard.from_dict(data)


#: loaders of models kept in another format than this project's state dict, by ``card.source["format"]``,
#: registered by :mod:`core.importers`: ``loader(folder, card)`` returns the model, taking images in [0, 1]
MODEL_FORMATS: Registry[Callable[[Path, ModelCard], nn.Module]] = Registry("model format")


def _checked_file(path: Path, card: ModelCard) -> Path:
    weights = path / card.model_file
    if not weights.is_file():
        raise CheckpointError(f"No weights at {weights}")
    if card.weights_sha256 and file_sha256(weights) != card.weights_sha256:
        raise CheckpointError(f"{weights} does not match the SHA-256 in its card: the file is corrupt or was replaced")
    return weights


def load_model(path: str | os.PathLike, device: torch.device | str | None = None) -> tuple[nn.Module, ModelCard]:
    """Load a saved model in eval mode, with its card (a model imported from another format through its format's
    loader, :data:`MODEL_FORMATS`).

    Raises:
        CheckpointError: missing files, corrupt weights, digest mismatch, or weights that do not fit the
            architecture named in the card.
    """
    path = resolve_model_path(path)
    if (arch := _imagenet(path)) is not None:
        return load_imagenet(arch, device)
    card = read_card(path)
    weights = _checked_file(path, card)
    if card.imported:
        model = MODEL_FORMATS.get(card.source["format"])(path, card)
        model.to(device or config.pick_device()).eval()
        return model, card
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if isinstance(exc, pickle.UnpicklingError) and found:
            # PyTorch's own message advises weights_only=False, i.e. running whatever code the file holds: never.
            raise CheckpointError(f"{weights} holds Python objects besides tensors ({found.group(1)}: a pickled model "
                                  "or code), which are never loaded; save the model's state_dict() instead") from exc
        raise CheckpointError(f"{weights} is not a readable PyTorch state dict (truncated, or not a PyTorch file: "
                              f"{type(exc).__name__})") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{weights} holds a {type(state).__name__}, not a state dict")
    try:
        model = build_model(card.arch, len(card.classes), card.channels, card.mean, card.std)
    except UnknownNameError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    problem = state_mismatch(model.state_dict(), state)
    if problem:
        raise CheckpointError(f"{weights} does not fit architecture {card.arch!r} with {len(card.classes)} classes: {problem}")
    model.load_state_dict(state)
    layers = dict(model.named_modules())
    if card.target_layer not in layers:  # every layer method would silently fall back to another layer
        from core.modelling.architectures import conv_layers

        raise CheckpointError(f"model card's target_layer {card.target_layer!r} is not a layer of {card.arch}; "
                              f"its default is {model.target_layer!r} (last layers: {', '.join(conv_layers(model)[-3:])}): "
                              "fix target_layer in card.json")
    model.target_layer = card.target_layer
    model.to(device or config.pick_device()).eval()
    return model, card


def recover(models_dir: str | os.PathLike | None = None) -> list[str]:
    """Finish or undo a replacement that a kill interrupted; returns the ids put back.

    :func:`save_model` writes ``.<id>.<random>`` (new), moves ``<id>`` to ``.<id>.old-<pid>`` and the new
    folder to ``<id>``. Killed between the two moves, ``<id>`` is missing: the old copy is moved back (the
    new one was not published). Copies of a model that is in place, and unpublished new folders, are
    leftovers and are removed, unless their writer is still running.
    """
    root = Path(models_dir) if models_dir else config.models_dir()
    restored: list[str] = []
    if not root.is_dir():
        return restored
    for p in sorted(root.iterdir()):
        new = re.fullmatch(r"\.(.+)\.new-(\d+)-.*", p.name)
        if new and p.is_dir() and not _alive(int(new.group(2))):
            shutil.rmtree(p, ignore_errors=True)  # never published: its writer died before the switch
            continue
        m = re.fullmatch(r"\.(.+)\.old-(\d+)", p.name)
        if not m or not p.is_dir() or _alive(int(m.group(2))):
            continue
        final = root / m.group(1)
        try:
            if not final.exists():
                os.replace(p, final)
                restored.append(m.group(1))
            else:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            continue
    return restored


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def broken_models(models_dir: str | os.PathLike | None = None) -> list[tuple[Path, str]]:
    """Model folders that cannot be used, each with the reason (shown as broken, never silently hidden)."""
    root = Path(models_dir) if models_dir else config.models_dir()
    out = []
    if root.is_dir():
        for p in sorted(root.iterdir()):
            if p.name.startswith(".") or not p.is_dir():
                continue
            try:
                card = read_card(p)
                if not (p / card.model_file).is_file():
                    raise CheckpointError(f"{card.model_file} is missing")
                if card.weights_sha256 and file_sha256(p / card.model_file) != card.weights_sha256:
                    raise CheckpointError(f"{card.model_file} does not match the SHA-256 in its card")
                if card.imported and card.source["format"] not in MODEL_FORMATS:
                    raise CheckpointError(f"imported from a {card.source['format']} file, a format this version "
                                          "cannot read")
            except CheckpointError as exc:
                out.append((p, str(exc)))
    return out


def serves(card: ModelCard, dataset: str) -> bool:
    """Whether ``card``'s model is listed for ``dataset``: the one it was trained on; for a model imported from
    elsewhere also ``imported`` (any image) and every dataset whose class names are its own, in any order."""
    if card.dataset == dataset:
        return True
    if not card.imported:
        return False
    if dataset == "imported":
        return True
    from core.datasets import get_source
    from core.modelling.cards import class_mapping

    try:
        known = get_source(dataset).info.classes
    except UnknownNameError:
        return False
    return bool(known) and class_mapping(card.classes, known) is not None


def list_models(models_dir: str | os.PathLike | None = None, dataset: str | None = None) -> list[tuple[Path, ModelCard]]:
    """Readable models under the models folder (newest first), optionally only those for ``dataset``
    (:func:`serves`); a replacement interrupted by a kill is recovered first (:func:`recover`).
    ``dataset="imagenet"`` lists torchvision's ImageNet classifiers (whether or not their weights are here yet:
    loading one says how to get them)."""
    root = Path(models_dir) if models_dir else config.models_dir()
    if dataset == IMAGENET:
        return [(root / imagenet_id(a), imagenet_card(a)) for a in imagenet_archs()]
    recover(root)
    out = []
    if root.is_dir():
        for p in sorted(root.iterdir()):
            if p.name.startswith(".") or not (p / CARD_FILE).is_file():
                continue
            try:
                card = read_card(p)
            except CheckpointError:
                continue
            if dataset is None or serves(card, dataset):
                out.append((p, card))
    out.sort(key=lambda pc: pc[1].created, reverse=True)
    return out
