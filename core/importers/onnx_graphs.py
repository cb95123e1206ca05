"""ONNX graphs (a Keras model through tf2onnx, a torch model through ``torch.onnx.export``, …): converted to torch with
onnx2torch, so every gradient method runs on them, and held against ONNX Runtime on a probe batch first: a conversion
that differs by more than float rounding is refused, with the numbers.

What an ONNX file says is used: its input's layout (channels last, as Keras exports take, is detected and handled),
size and channels, a batch size fixed at export, and a final Softmax node (taken off: the methods explain the logits
before it). A graph onnx2torch cannot convert still runs through ONNX Runtime: the perturbation methods (Occlusion,
LIME, SHAP Partition) work on it, and the gradient and CAM methods are listed as not applicable, with that reason.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.errors import CheckpointError
from core.importers.extras import require

MODEL_FILE = "model.onnx"
#: a conversion may differ from ONNX Runtime by at most this, relative to the largest output magnitude (at least 1)
TOLERANCE = 1e-4
#: nodes that only move values: a Softmax before them is still the graph's last computation
_PASS = {"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze"}


def read(path: Path):
    onnx = require("onnx", "an ONNX file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{path.name} is not a readable ONNX graph ({type(exc).__name__}: {exc})") from exc
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        raise CheckpointError(f"{path.name} keeps its weights in separate files (external data): save the graph as "
                              "one file (onnx.save(model, path, save_as_external_data=False))")
    return model


def graph_input(model) -> tuple[str, list[int | None]]:
    """The graph's one real input (initializers listed as inputs left out) and its dimensions (None: dynamic)."""
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise CheckpointError(f"the graph takes {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); an image "
                              "classifier takes one batch of images")
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4:
        raise CheckpointError(f"the graph's input has {len(dims)} dimensions; an image batch has 4 (N, C, H, W or "
                              "N, H, W, C)")
    return inputs[0].name, dims


def layout_of(dims: list[int | None]) -> tuple[str, int | None, int | None]:
    """(``"nchw"`` or ``"nhwc"``, channels, size) from the input's dimensions."""
    if dims[3] in (1, 3) and dims[1] not in (1, 3):
        return "nhwc", dims[3], dims[1] if dims[1] == dims[2] else None
    return "nchw", dims[1], dims[2] if dims[2] == dims[3] else None


def final_softmax(model) -> str | None:
    """The name of the Softmax node whose output the graph returns (through shape-only nodes), or None."""
    producers = {out: node for node in model.graph.node for out in node.output}
    node = producers.get(model.graph.output[0].name)
    while node is not None and node.op_type in _PASS:
        node = producers.get(node.input[0])
    return node.name if node is not None and node.op_type == "Softmax" else None


def _inline_identity_initializers(model):
    """``torch.onnx.export`` shares equal weights through Identity nodes; onnx2torch wants them as initializers."""
    onnx = require("onnx", "an ONNX file")
    model = copy.deepcopy(model)
    inits = {t.name: t for t in model.graph.initializer}
    keep = []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in inits:
            t = onnx.TensorProto()
            t.CopyFrom(inits[node.input[0]])
            t.name = node.output[0]
            model.graph.initializer.append(t)
        else:
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return model


def session(data: bytes):
    ort = require("onnxruntime", "an ONNX file")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"ONNX Runtime cannot run the graph ({type(exc).__name__}: {str(exc)[:300]})") from exc


class OnnxRuntimeNet(nn.Module):
    """A graph run by ONNX Runtime: forward only, no gradients, no layers to hook."""

    runs_onnxruntime = True

    def __init__(self, data: bytes, input_name: str, why: str) -> None:
        super().__init__()
        self.data, self.input_name = data, input_name
        self.session = session(data)
        note = f"onnx2torch could not convert this graph ({why}), so it runs through ONNX Runtime, which computes no gradients and has no layers to hook"
        self.trait_notes = {"gradients": note, "spatial": note, "relu": note, "swappable": note}

    def __deepcopy__(self, memo):
        new = copy.copy(self)  # the session is shared: ONNX Runtime runs concurrent calls on one session
        memo[id(self)] = new
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().cpu().numpy().astype(np.float32, copy=False)
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(arr)})[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32)).to(x.device)


def _probe_batch(dims: list[int | None], layout: str, size: int, channels: int, fixed: int | None) -> np.ndarray:
    n = fixed or 2
    shape = (n, size, size, channels) if layout == "nhwc" else (n, channels, size, size)
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def convert(model) -> tuple[nn.Module | None, str]:
    """The graph as a torch module (onnx2torch), or (None, why not)."""
    onnx2torch = require("onnx2torch", "an ONNX file")
    try:
        return onnx2torch.convert(_inline_identity_initializers(model)).eval(), ""
    except Exception as exc:  # noqa: BLE001 - any conversion failure falls back to ONNX Runtime, with its reason
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}" if str(exc) else type(exc).__name__


def checked(module: nn.Module, reference, x: np.ndarray, input_name: str) -> None:
    """Refuse a conversion that differs from ONNX Runtime's outputs beyond float rounding, with the numbers."""
    want = np.asarray(reference.run(None, {input_name: x})[0], dtype=np.float64)
    with torch.no_grad():
        got = module(torch.from_numpy(x))
    got = np.asarray((got[0] if isinstance(got, (tuple, list)) else got).numpy(), dtype=np.float64)
    scale = max(1.0, float(np.abs(want).max()))
    if got.shape != want.shape or not np.all(np.abs(got - want) <= TOLERANCE * scale):
        diff = float(np.abs(got - want).max()) if got.shape == want.shape else float("nan")
        raise CheckpointError(f"the graph converted to torch (onnx2torch) differs from ONNX Runtime on a probe batch: "
                              f"largest difference {diff:.3g} for outputs up to {scale:.3g} (allowed: "
                              f"{TOLERANCE * scale:.3g}); shapes {got.shape} and {want.shape}. The conversion cannot be "
                              "trusted; export the model again (another opset), or as TorchScript")


def _without_softmax(module: nn.Module) -> bool:
    """Take the converted graph's final softmax off (the module that computes it becomes the identity)."""
    graph = getattr(module, "graph", None)
    if graph is None:
        return False
    out = next(n for n in graph.nodes if n.op == "output")
    node = out.args[0]
    while node is not None and getattr(node, "op", None) in ("call_module", "call_function", "call_method"):
        target = module.get_submodule(node.target) if node.op == "call_module" else None
        kind = type(target).__name__ if target is not None else str(node.target)
        if "softmax" in kind.lower():
            if target is None:
                return False
            module.set_submodule(node.target, nn.Identity())
            return True
        if kind in ("Identity", "Flatten", "OnnxReshape", "OnnxSqueezeStaticAxes", "OnnxUnsqueezeStaticAxes"):
            node = node.args[0] if node.args else None
            continue
        return False
    return False


def open_file(path: Path, given: dict):
    from core.importers.draft import Opened
    from core.importers.store import copy_into

    model = read(path)
    data = path.read_bytes()
    input_name, dims = graph_input(model)
    layout, channels, size = layout_of(dims)
    fixed = dims[0]
    values: dict = {}
    notes: list[str] = []
    if channels in (1, 3):
        values["channels"] = (channels, "the ONNX graph's input shape")
    if size:
        values["input_size"] = (size, "the ONNX graph's input shape")
    if layout == "nhwc":
        notes.append("the graph takes channels-last images (N, H, W, C), as Keras exports do: they are given so")
    if fixed:
        notes.append(f"the graph was exported for batches of exactly {fixed} image{'s' * (fixed != 1)}"
                     + (": images are sent one at a time" if fixed == 1 else ""))
        if fixed != 1:
            raise CheckpointError(f"the graph takes batches of exactly {fixed} images: export it with a dynamic batch "
                                  "dimension, or a batch of 1")
    softmax = final_softmax(model)
    reference = session(data)
    net, why = convert(model)
    probe = _probe_batch(dims, layout, size or given.get("input_size") or 224, channels or 3, fixed)
    source = {"input_name": input_name}
    if net is not None:
        checked(net, reference, probe, input_name)
        notes.append("converted to torch with onnx2torch; its outputs equal ONNX Runtime's on a probe batch (within "
                     f"{TOLERANCE:g} of the largest)")
        if softmax and given.get("output") != "probabilities" and _without_softmax(net):
            values["output"] = ("logits", f"detected: the graph ends in a Softmax node ({softmax}), taken off (the "
                                          "methods explain the logits before it)")
            notes.append(f"the graph's final Softmax ({softmax}) was taken off: the maps explain the logits before it, "
                         "and the predicted probabilities are the same")
            source["softmax_removed"] = True
        source["runtime"] = "torch"
    else:
        net = OnnxRuntimeNet(data, input_name, why)
        notes.append(f"onnx2torch could not convert the graph ({why}): it runs through ONNX Runtime, so only the "
                     "perturbation methods (Occlusion, LIME, SHAP Partition) apply")
        if softmax:
            values["output"] = ("probabilities", f"the graph ends in a Softmax node ({softmax})")
        source["runtime"], source["unconverted"] = "onnxruntime", why
    return Opened("onnx", net, "onnx" if source["runtime"] == "torch" else "onnx (ONNX Runtime)", values, notes, source,
                  write=lambda folder: copy_into(path, folder, MODEL_FILE), model_file=MODEL_FILE, layout=layout,
                  fixed_batch=1 if fixed == 1 else None)


def load(folder: Path, card) -> nn.Module:
    path = folder / card.model_file
    model = read(path)
    input_name = card.source.get("input_name") or graph_input(model)[0]
    if card.source.get("runtime") == "onnxruntime":
        return OnnxRuntimeNet(path.read_bytes(), input_name, card.source.get("unconverted", "at import"))
    net, why = convert(model)
    if net is None:
        raise CheckpointError(f"onnx2torch cannot convert the graph any more ({why}); import it again")
    if card.source.get("softmax_removed") and not _without_softmax(net):
        raise CheckpointError("the graph's final Softmax, taken off at import, is not found: import it again")
    return net
