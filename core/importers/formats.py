"""The formats a model can be imported from, each one reader (:mod:`.state_dicts`, :mod:`.torchscript`,
:mod:`.onnx_graphs`, :mod:`.timm_models`, :mod:`.hf_models`) that opens a file and loads a saved copy again."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from torch import nn

from core.errors import CheckpointError
from core.importers import hf_models, onnx_graphs, state_dicts, timm_models, torchscript
from core.importers.store import wrap
from core.importers.wrapper import ImportedClassifier


@dataclass(frozen=True)
class Format:
    name: str
    title: str
    #: what a user gives, in words (the README and the import page list it)
    files: str
    #: the optional package it needs (``requirements-import.txt``), if any
    extra: str | None
    open: Callable[[Path, dict], Any]
    load: Callable[[Path, Any], nn.Module]


def _open_state_dict(path: Path, given: dict):
    """A state dict: of an architecture this project builds, or of timm's NAME when ``arch`` is ``timm:NAME``."""
    if str(given.get("arch") or "").startswith("timm:"):
        return timm_models.open_file(path, given)
    return state_dicts.open_file(path, given)


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("state_dict", "State dict", ".pt / .pth / .bin / .ckpt (torch.save of a state_dict, or a checkpoint with "
           "one) or .safetensors, for an architecture this project builds or a timm model", None,
           _open_state_dict, state_dicts.load),
    Format("torchscript", "TorchScript", "a file written by torch.jit.save (scripted or traced)", None,
           torchscript.open_file, torchscript.load),
    Format("onnx", "ONNX", "a .onnx graph (from Keras with tf2onnx, torch.onnx.export, …)", "onnx2torch",
           onnx_graphs.open_file, onnx_graphs.load),
    Format("timm", "timm", "a timm folder (config.json with architecture and pretrained_cfg, model.safetensors), or a "
           "state dict with --arch timm:NAME", "timm", timm_models.open_folder, timm_models.load),
    Format("huggingface", "Hugging Face", "a save_pretrained folder of a transformers image classifier (config.json, "
           "preprocessor_config.json, model.safetensors)", "transformers", hf_models.open_folder, hf_models.load),
)}
#: what :func:`core.importers.files.kind` says of a file -> the format that reads it
BY_KIND = {"torch": "state_dict", "safetensors": "state_dict", "torchscript": "torchscript", "onnx": "onnx",
           "timm": "timm", "huggingface": "huggingface"}


def load(folder: Path, card) -> ImportedClassifier:
    """The imported model in ``folder``, read by its format and wrapped as its card says (its file's digest already
    checked by :func:`core.load_model`, which calls this through its registry of formats)."""
    try:
        net = FORMATS[card.source["format"]].load(folder, card)
    except CheckpointError as exc:
        raise CheckpointError(f"{folder.name}: {exc}") from exc
    return wrap(net, card)
