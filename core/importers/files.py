"""What a model file is, and its tensors, read without running anything in it.

:func:`kind` tells the formats apart by their bytes, not their names: a TorchScript archive (a zip with ``code/``),
a ``torch.save`` archive or legacy pickle, a safetensors file (a length and a JSON header), an ONNX graph, or a timm
or Hugging Face folder (``config.json``). A ``torch.save`` file is first read as a stream of pickle opcodes
(:mod:`pickletools`, which builds nothing): a global outside what ``torch.load(weights_only=True)`` allows (a class
of a pickled whole model, or a function a planted ``__reduce__`` would call) refuses the file before anything is
unpickled. :func:`tensors` then reads it with ``weights_only=True`` and unwraps the usual checkpoint wrappings.
"""
from __future__ import annotations

import io
import json
import pickletools
import re
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.errors import CheckpointError

#: checkpoint dictionaries hold the weights under one of these keys (PyTorch Lightning, the PyTorch tutorials' and
#: common training scripts' ``model_state_dict``, timm's ``state_dict_ema`` is taken only when nothing else is there)
NESTED = ("state_dict", "model_state_dict", "model", "net", "weights", "params", "state_dict_ema")
#: single leading names every key may carry: DataParallel's ``module.``, ``torch.compile``'s ``_orig_mod.``, a
#: Lightning module's attribute (``model.``, ``net.``)
PREFIXES = ("module", "_orig_mod", "model", "net")

SAVE_ADVICE = ("save its weights instead: `torch.save(model.state_dict(), 'weights.pt')` (then import weights.pt, "
               "with --arch if the architecture is not detected), or a TorchScript file: "
               "`torch.jit.save(torch.jit.trace(model.eval(), example_batch), 'model.ts')`, or ONNX: "
               "`torch.onnx.export(model.eval(), example_batch, 'model.onnx')`")


def kind(path: Path) -> str:
    """``"timm"``, ``"huggingface"``, ``"torchscript"``, ``"torch"`` (a torch.save file), ``"safetensors"`` or
    ``"onnx"``; :class:`CheckpointError` for anything else."""
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise CheckpointError(f"{path.name}/ has no config.json: a model folder is a timm or Hugging Face folder "
                                  "(config.json beside model.safetensors)")
        try:
            cfg = json.loads(config.read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{path.name}/config.json is not valid JSON ({exc})") from exc
        if not isinstance(cfg, dict):
            raise CheckpointError(f"{path.name}/config.json is not a JSON object")
        if "architecture" in cfg:
            return "timm"
        if "model_type" in cfg or "architectures" in cfg or "id2label" in cfg:
            return "huggingface"
        raise CheckpointError(f"{path.name}/config.json names no model: timm's has 'architecture', Hugging Face's "
                              "'model_type' and 'architectures'")
    with open(path, "rb") as fh:
        head = fh.read(16)
    if not head:
        raise CheckpointError(f"{path.name} is empty")
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except zipfile.BadZipFile as exc:
            raise CheckpointError(f"{path.name} is a damaged zip archive ({exc})") from exc
        if any("/code/" in n or n.endswith("constants.pkl") for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            return "torch"
        raise CheckpointError(f"{path.name} is a zip archive but neither a PyTorch nor a TorchScript file")
    if head[:1] == b"\x80":  # a pickle (torch.save's legacy format)
        return "torch"
    if len(head) >= 9:
        (n,) = struct.unpack("<Q", head[:8])
        if 2 <= n <= 100 * 2**20 and head[8:9] == b"{":
            return "safetensors"
    if _onnx_graph(path):
        return "onnx"
    raise CheckpointError(f"{path.name} is not a model file this project reads: a PyTorch state dict (.pt, .pth, "
                          ".bin, .ckpt), a .safetensors file, a TorchScript file, an ONNX graph, or a timm or Hugging "
                          "Face folder")


def _onnx_graph(path: Path) -> bool:
    try:
        import onnx
    except ImportError:
        return path.suffix.lower() == ".onnx"
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - not a protobuf of a model
        return False
    return len(model.graph.node) > 0


# --- torch.save files ----------------------------------------------------------------------------------------------

def _pickle_streams(path: Path) -> list[bytes]:
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head.startswith(b"PK\x03\x04"):
        with zipfile.ZipFile(path) as z:
            return [z.read(n) for n in z.namelist() if n.endswith("data.pkl")]
    data = path.read_bytes()  # legacy: several pickles one after another (magic, protocol, sys info, the object)
    streams, pos = [], 0
    buf = io.BytesIO(data)
    while pos < len(data) and len(streams) < 4:
        try:
            for _ in pickletools.genops(buf):  # up to this pickle's STOP
                pass
        except Exception:  # noqa: BLE001 - the storages' raw bytes follow the pickles
            break
        end = buf.tell()
        streams.append(data[pos:end])
        pos = end
    return streams


def foreign_globals(path: Path) -> list[str]:
    """The globals a ``torch.save`` file names that ``torch.load(weights_only=True)`` would refuse (classes of a
    pickled model, functions a payload would call), read from its pickle opcodes without building anything."""
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        allowed = set(_get_allowed_globals())
    except (ImportError, AttributeError):  # another torch: torch.load's own check still refuses them
        return []
    allowed |= {f"{g.__module__}.{g.__qualname__}" for g in torch.serialization.get_safe_globals() if hasattr(g, "__module__")}
    found: list[str] = []
    for data in _pickle_streams(path):
        strings: list[str] = []
        try:
            for op, arg, _ in pickletools.genops(data):
                if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                    strings.append(str(arg))
                elif op.name == "GLOBAL":  # protocol 2 and below name the builtins module __builtin__
                    found.append(str(arg).replace(" ", ".").replace("__builtin__.", "builtins."))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.append(f"{strings[-2]}.{strings[-1]}")
        except Exception:  # noqa: BLE001 - a damaged stream: torch.load says so below
            continue

    def refused(name: str) -> bool:
        if name in allowed:
            return False
        # torch's own storages and rebuild helpers are torch.load's to judge; a torch.nn class is a pickled module
        return name.startswith("torch.nn.") or not name.startswith("torch.")

    return sorted({g for g in found if refused(g)}, key=lambda g: (g.startswith("torch."), g))  # the model's own first


@dataclass
class Tensors:
    """A file's tensors, unwrapped, and what was unwrapped or left out (said on the card)."""

    state: dict[str, torch.Tensor]
    notes: list[str] = field(default_factory=list)
    #: mean / std found in the file (a state dict of this project's own models carries its normalisation)
    normalisation: tuple[list[float], list[float]] | None = None


def _load_torch(path: Path) -> Any:
    refused = foreign_globals(path)
    if refused:
        kind_ = "a pickled whole model" if any("." in g and g.split(".")[-1][:1].isupper() for g in refused) else "pickled Python objects"
        raise CheckpointError(f"{path.name} holds {kind_} ({', '.join(refused[:4])}): reading it would mean importing "
                              f"and running that code, which is never done. In the code that made it, {SAVE_ADVICE}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every failure is the file's
        # torch's own message goes on to advise weights_only=False, i.e. running the file's code: never quoted
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found:
            raise CheckpointError(f"{path.name} holds Python objects besides tensors ({found.group(1)}), which are "
                                  f"never loaded. In the code that made it, {SAVE_ADVICE}") from exc
        raise CheckpointError(f"{path.name} is not a readable PyTorch file (truncated or damaged: "
                              f"{type(exc).__name__})") from exc


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError as exc:
        from core.importers.extras import missing

        raise missing("safetensors", "a .safetensors file") from exc
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{path.name} is not a readable safetensors file ({type(exc).__name__}: {exc})") from exc


def _unwrap(obj: Any, name: str) -> Tensors:
    notes: list[str] = []
    if isinstance(obj, dict) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        key = next((k for k in NESTED if isinstance(obj.get(k), dict) and obj[k]
                    and all(isinstance(v, torch.Tensor) for v in obj[k].values())), None)
        if key is None:
            kinds = ", ".join(f"{k!r} ({type(v).__name__})" for k, v in list(obj.items())[:6])
            raise CheckpointError(f"{name} is a dictionary without a state dict of tensors in it (it holds {kinds}); "
                                  f"save `model.state_dict()` itself, or a checkpoint with it under 'state_dict'")
        others = [str(k) for k in obj if k != key]
        if others:
            notes.append(f"the weights were read from the checkpoint's {key!r}; the rest ({', '.join(others[:6])}"
                         f"{'…' if len(others) > 6 else ''}) is not needed to explain the model and was ignored")
        obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{name} holds a {type(obj).__name__}, not a state dict of tensors")
    state = {str(k): v for k, v in obj.items()}
    while True:
        first = {k.split(".", 1)[0] for k in state}
        if len(first) == 1 and (p := first.pop()) in PREFIXES and all("." in k for k in state):
            state = {k.split(".", 1)[1]: v for k, v in state.items()}
            notes.append(f"the prefix '{p}.' of every key was taken off"
                         + (" (a DataParallel or DistributedDataParallel copy)" if p == "module" else ""))
            continue
        break
    normalisation = None
    if "normalize.mean" in state and any(k.startswith("net.") for k in state):  # this project's own Classifier
        mean, std = state.pop("normalize.mean").flatten().tolist(), state.pop("normalize.std").flatten().tolist()
        state = {k[4:]: v for k, v in state.items() if k.startswith("net.")}
        normalisation = (mean, std)
        notes.append("the file is a model of this project (its own normalisation, mean and std, was read from it)")
    bad = [k for k, v in state.items() if not v.is_floating_point() and not k.endswith("num_batches_tracked")]
    if any(v.is_complex() for v in state.values()):
        raise CheckpointError(f"{name} holds complex tensors, which no image classifier here has")
    if bad and all(not v.is_floating_point() for v in state.values()):
        raise CheckpointError(f"{name} holds no floating-point weights (e.g. {bad[0]}: {state[bad[0]].dtype})")
    return Tensors(state, notes, normalisation)


def tensors(path: Path) -> Tensors:
    """The state dict in a ``torch.save`` or safetensors file, with the usual wrappings taken off (a checkpoint's
    ``state_dict`` / ``model_state_dict``, a ``module.`` / ``model.`` prefix), floating tensors as float32."""
    what = kind(path)
    if what == "safetensors":
        found = _unwrap(_load_safetensors(path), path.name)
    elif what == "torch":
        found = _unwrap(_load_torch(path), path.name)
    else:
        raise CheckpointError(f"{path.name} is a {what} file, not a state dict")
    converted = [k for k, v in found.state.items() if v.is_floating_point() and v.dtype != torch.float32]
    if converted:
        dtypes = sorted({str(found.state[k].dtype).replace('torch.', '') for k in converted})
        found.notes.append(f"{len(converted)} tensors stored as {', '.join(dtypes)} were converted to float32")
    found.state = {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in found.state.items()}
    return found
