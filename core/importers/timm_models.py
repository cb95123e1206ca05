"""timm models: a ``timm.create_model(NAME, num_classes=...)`` state dict (``--arch timm:NAME``), or a timm folder
(``config.json`` with ``architecture`` and ``pretrained_cfg``, beside ``model.safetensors`` or ``pytorch_model.bin``),
as ``save_pretrained`` and the Hugging Face hub's timm repositories keep them.

The model is built with ``pretrained=False`` (nothing is fetched) on the ``meta`` device, with the class count and
input channels read from the file's classifier and first convolution (the ones its ``pretrained_cfg`` names), and
the file's weights are assigned to it. The preprocessing (input size, mean / std, interpolation, the resize before the
centre crop, from ``crop_pct``) comes from the folder's ``pretrained_cfg``, else from timm's own for that name.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import nn

from core.errors import CheckpointError
from core.importers.extras import require
from core.importers.files import Tensors, tensors
from core.importers.state_dicts import shape_problems

WEIGHTS = "weights.pt"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors")


def _create(name: str, num_classes: int, in_chans: int) -> nn.Module:
    timm = require("timm", "a timm model")
    try:
        with torch.device("meta"):
            return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_chans)
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            close = timm.list_models(f"*{name.split('_')[0]}*")[:8]
            raise CheckpointError(f"timm has no model {name!r}" + (f"; similar: {', '.join(close)}" if close else "")
                                  ) from None
        raise CheckpointError(f"timm cannot build {name!r}: {exc}") from exc


def _shape(name: str, state: dict[str, torch.Tensor]) -> tuple[int, int, dict]:
    """(classes, input channels, timm's pretrained_cfg) from the file's classifier and first convolution."""
    cfg = dict(_create(name, 2, 3).pretrained_cfg)
    head, first = cfg.get("classifier"), cfg.get("first_conv")
    head = head[0] if isinstance(head, (list, tuple)) else head
    w = state.get(f"{head}.weight")
    c = state.get(f"{first}.weight")
    if w is None or c is None:
        raise CheckpointError(f"the file does not look like timm's {name}: it has no {head}.weight (the classifier) or "
                              f"no {first}.weight (the first convolution)")
    return int(w.shape[0]), int(c.shape[1]), cfg


def _build(name: str, num_classes: int, in_chans: int, state: dict[str, torch.Tensor]) -> nn.Module:
    net = _create(name, num_classes, in_chans)
    own = net.state_dict()
    problems = shape_problems(own, state)
    if problems:
        raise CheckpointError(f"the file does not fit timm's {name} with {num_classes} classes: {problems}")
    net.load_state_dict({**{k: v for k, v in own.items() if k not in state and k.endswith("num_batches_tracked")},
                         **state}, strict=True, assign=True)
    left = [n for n, t in [*net.named_parameters(), *net.named_buffers()] if t.is_meta]
    if left:  # a non-persistent buffer (e.g. a position index) timm computes at construction
        raise CheckpointError(f"timm's {name} keeps {len(left)} tensors that are not in the file (e.g. {left[0]}); "
                              "import it as TorchScript or ONNX instead")
    return net.eval()


def preprocessing(cfg: dict, where: str) -> dict:
    """Card values from a timm ``pretrained_cfg``: size, mean / std, interpolation, the resize before the crop."""
    values = {}
    size = cfg.get("input_size") or cfg.get("test_input_size")
    if size:
        c, h, w = (int(v) for v in size)
        if h != w:
            raise CheckpointError(f"the model takes {h}x{w} images; only square inputs are supported")
        values["input_size"] = (h, where)
        crop = float(cfg.get("crop_pct") or 1.0)
        if cfg.get("crop_mode", "center") == "center" and crop < 1.0:
            values["resize_size"] = (int(math.floor(h / crop)), f"{where} (crop_pct {crop})")
    for key in ("mean", "std"):
        if cfg.get(key):
            values[key] = ([float(v) for v in cfg[key]], where)
    if cfg.get("interpolation") in ("bilinear", "bicubic", "nearest"):
        values["interpolation"] = (cfg["interpolation"], where)
    return values


def _write(state: dict[str, torch.Tensor]):
    def write(folder) -> str:
        from core.io import atomic_write_with

        atomic_write_with(folder / WEIGHTS, lambda fh: torch.save(state, fh))
        return WEIGHTS

    return write


def open_state(found: Tensors, name: str, path: Path, cfg_file: dict | None = None):
    """timm's ``name`` with the file's weights as an :class:`~core.importers.draft.Opened`."""
    from core.importers.draft import Opened

    num_classes, in_chans, cfg = _shape(name, found.state)
    net = _build(name, num_classes, in_chans, found.state)
    own = cfg_file.get("pretrained_cfg") if cfg_file else None
    values = preprocessing(own or cfg, "the folder's pretrained_cfg" if own else f"timm's configuration of {name}")
    values["channels"] = (in_chans, "the file (its first convolution)")
    values["arch"] = (f"timm:{name}", "the folder's config.json" if cfg_file else "given")
    if cfg_file and cfg_file.get("label_names"):
        values["classes"] = ([str(v) for v in cfg_file["label_names"]], "the folder's config.json (label_names)")
    state = {k: v for k, v in net.state_dict().items()}
    notes = list(found.notes) + [f"built with timm.create_model({name!r}, pretrained=False, num_classes={num_classes}, "
                                 f"in_chans={in_chans}) and the file's weights"]
    return Opened("timm", net, f"timm:{name}", values, notes,
                  {"timm_name": name, "num_classes": num_classes, "in_chans": in_chans}, write=_write(state),
                  num_classes=num_classes)


def open_file(path: Path, given: dict):
    """A state dict of timm's ``NAME`` (``arch`` ``timm:NAME``)."""
    return open_state(tensors(path), given["arch"][len("timm:"):], path)


def open_folder(path: Path, given: dict):
    cfg = json.loads((path / "config.json").read_text())
    name = str(cfg.get("architecture"))
    weights = next((path / f for f in WEIGHT_FILES if (path / f).is_file()), None)
    if weights is None:
        raise CheckpointError(f"{path.name}/ has no weights file ({', '.join(WEIGHT_FILES)})")
    arch = given.get("arch")
    if arch and arch != f"timm:{name}":
        raise CheckpointError(f"the folder's config.json names timm's {name}, not {arch}")
    return open_state(tensors(weights), name, weights, cfg)


def load(folder: Path, card) -> nn.Module:
    s = card.source
    return _build(s["timm_name"], int(s["num_classes"]), int(s["in_chans"]), tensors(folder / card.model_file).state)
