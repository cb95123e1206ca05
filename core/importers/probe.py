"""What a model made elsewhere offers attribution methods, found by running it rather than from the names of its
module classes (a Hugging Face ``GELUActivation`` is no ``torch.nn.GELU``; a TorchScript or converted ONNX module is
no ``torch.nn.ReLU``).

One forward and backward pass of two probe images, with every operation recorded below autograd (a dispatch mode,
which also sees what a TorchScript graph runs) and a hook on every module that takes hooks, gives:

* ``gradients``: the output has a finite gradient with respect to the input;
* ``relu``: the only non-linearities are ``torch.nn.ReLU`` modules, each called once and not in place, and max
  pooling; no two activations are multiplied (attention, gating), nothing is normalised by its own statistics (layer
  norm), and no activation is changed in place (``out += identity``). That is what captum's DeepLIFT Rescale rule and
  guided backpropagation hook, so they are offered only then;
* ``spatial``: layers whose output is a feature map (N, C, h, w) with h, w >= 2, the CAM candidates; the default
  is the last of them to finish (the last convolutional block);
* ``tokens``: a transformer's layer norms whose output is (N, prefix + h * w, C), the CAM candidates then (reshaped
  to a grid); the default is the input norm of the last block (``ln_1``, ``norm1``, ``layernorm_before``);
* ``attention``: ``torch.nn.MultiheadAttention`` layers that ran (attention rollout reads their weights);
* ``swappable``: the layers are modules in the forward path (not a TorchScript graph's taps).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from core.modelling.architectures import MAX_PREFIX_TOKENS

#: operations that are linear in the activations (or only move them); a multiplication or division counts as linear
#: when at most one of its tensors comes from the input
LINEAR = {
    "convolution", "_convolution", "addmm", "mm", "bmm", "matmul", "linear", "mul", "div", "add", "sub", "rsub", "neg",
    "cat", "stack", "view", "_unsafe_view", "reshape", "_reshape_alias", "flatten", "unflatten", "permute",
    "transpose", "t", "clone", "contiguous", "expand", "expand_as", "slice", "select", "index_select", "squeeze",
    "unsqueeze", "mean", "sum", "avg_pool2d", "adaptive_avg_pool2d", "_adaptive_avg_pool2d", "native_batch_norm",
    "_native_batch_norm_legit_no_training", "_native_batch_norm_legit", "batch_norm", "detach", "alias", "empty",
    "empty_like", "empty_strided", "zeros", "zeros_like", "ones", "ones_like", "full", "full_like", "fill", "_to_copy",
    "to", "copy", "lift_fresh", "lift_fresh_copy", "constant_pad_nd", "pad", "flip", "split", "split_with_sizes",
    "chunk", "unbind", "narrow", "as_strided", "upsample_bilinear2d", "upsample_nearest2d", "pixel_shuffle", "dropout",
    "native_dropout", "feature_dropout", "scalar_tensor", "arange", "new_zeros", "new_ones", "new_empty", "repeat",
    "tile", "roll", "max_pool2d_with_indices", "max_pool2d", "sym_size", "sym_numel", "sym_stride", "_local_scalar_dense",
    "_conj", "resolve_conj", "resolve_neg", "baddbmm", "einsum",
}
#: products of tensors: non-linear when two of their tensors come from the input
PRODUCTS = {"mul", "bmm", "mm", "matmul", "addmm", "baddbmm", "einsum", "linear"}
#: inverse and normalising operations are non-linear when an input-derived tensor divides
DIVISIONS = {"div"}
#: operations every model runs that change nothing (in place on tensors that do not come from the input)
HARMLESS_INPLACE = {"fill_", "zero_", "copy_", "normal_", "uniform_", "resize_", "set_"}


@dataclass
class Findings:
    traits: frozenset[str]
    cam_layers: list[str]
    target_layer: str | None
    #: why a trait is missing, in words a method's "not offered" line can add to its own reason
    notes: dict[str, str] = field(default_factory=dict)
    #: non-linear operations seen, by name (for the card and the tests)
    nonlinear: list[str] = field(default_factory=list)


class _Ops(TorchDispatchMode):
    """Records each operation below autograd, with which of its tensors come from the input (require grad)."""

    def __init__(self) -> None:
        super().__init__()
        self.nonlinear: Counter[str] = Counter()
        self.relus = 0
        self.inplace: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        text = str(func)  # "aten.relu.default"
        name = text.split(".")[1] if text.count(".") >= 2 else text
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        live = [a.requires_grad for a in tensors]
        if name.endswith("_") and not name.startswith("_") and name not in HARMLESS_INPLACE and live[:1] == [True]:
            self.inplace[name] += 1
        base = name.rstrip("_")
        if base == "relu" and not name.endswith("_"):
            self.relus += 1
        elif base in PRODUCTS and sum(live) >= 2:
            self.nonlinear[f"{base} of two activations"] += 1
        elif base in DIVISIONS and len(live) >= 2 and live[1]:
            self.nonlinear["division by an activation"] += 1
        elif base not in LINEAR and base != "relu" and any(live):
            self.nonlinear[base] += 1
        return func(*args, **(kwargs or {}))


def _token_grid(shape: tuple[int, ...]) -> bool:
    if len(shape) != 3:
        return False
    side = math.isqrt(shape[1])
    return side >= 2 and shape[1] - side * side <= MAX_PREFIX_TOKENS


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.LayerNorm) or "layernorm" in type(module).__name__.lower()


@dataclass
class _Run:
    """What one recorded forward (and backward) pass saw."""

    outputs: list[tuple[str, tuple[int, ...], nn.Module | None]] = field(default_factory=list)  # as modules finish
    relu_calls: Counter = field(default_factory=Counter)
    relu_inplace: list[str] = field(default_factory=list)
    attention_calls: int = 0
    ops: _Ops = field(default_factory=_Ops)


def _record(model: nn.Module, x: torch.Tensor, notes: dict[str, str]) -> tuple[_Run, bool]:
    """Run ``model`` on ``x`` with every operation and every hookable module's output recorded, its parameters
    frozen for the pass (so that only what comes from the input requires grad), then its gradient; ``notes`` gets why
    there is none. Returns the run and whether the input has a finite gradient."""
    run = _Run()

    def hook(name: str):
        def record(module, args, out):
            if isinstance(module, nn.ReLU):
                run.relu_calls[name] += 1
                if module.inplace:
                    run.relu_inplace.append(name)
            if isinstance(module, nn.MultiheadAttention):
                run.attention_calls += 1
            if isinstance(out, torch.Tensor):
                run.outputs.append((name, tuple(out.shape), module))
        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in model.named_modules()
               if name.startswith("net.") and not isinstance(module, torch.jit.ScriptModule)]
    saved = [(p, p.requires_grad) for p in model.parameters()]
    gradients = "gradients" not in notes
    try:
        for p, _ in saved:
            p.requires_grad_(False)
        xg = x.clone().requires_grad_(gradients)
        with run.ops:
            out = model(xg)
        if gradients:
            if out.grad_fn is None:
                gradients, notes["gradients"] = False, "its output does not depend on the input through torch operations"
            else:
                (grad,) = torch.autograd.grad(out[:, 0].sum(), xg)
                if not torch.isfinite(grad).all():
                    gradients, notes["gradients"] = False, "its gradient with respect to the input is not finite"
    finally:
        for h in handles:
            h.remove()
        for p, flag in saved:
            p.requires_grad_(flag)
    return run, gradients


def _layers(outputs, batch: int, traits: set[str], notes: dict[str, str]) -> tuple[list[str], str | None]:
    """The CAM layers and the default one: a transformer's token norms (the last block's input norm by default), else
    the layers that hand on feature maps of at least 2 x 2 (the last to finish by default)."""
    tokens = [n for n, s, m in outputs if _token_grid(s) and (m is None or _is_norm(m))]
    spatial = [n for n, s, _ in outputs if len(s) == 4 and s[0] == batch and min(s[2:]) >= 2]
    if tokens:
        traits.add("tokens")
        layers = list(dict.fromkeys(tokens))
        parents = Counter(n.rsplit(".", 1)[0] for n in layers)
        blocks = [n for n in layers if parents[n.rsplit(".", 1)[0]] >= 2]  # a block has an input and an output norm
        last = blocks[-1].rsplit(".", 1)[0] if blocks else None
        return layers, next((n for n in layers if last and n.rsplit(".", 1)[0] == last), layers[-1])
    if spatial:
        traits.add("spatial")
        return list(dict.fromkeys(spatial)), spatial[-1]
    notes.setdefault("spatial", "no layer of it hands on feature maps of at least 2 x 2")
    return [], None


def _relu_note(run: _Run, graph: bool) -> str | None:
    """Why captum's ReLU rules (DeepLIFT's Rescale, guided backpropagation) do not hold for what ran (None: they do)."""
    nonlinear = sorted(run.ops.nonlinear)
    if nonlinear:
        return f"it computes {', '.join(nonlinear[:4])}{' and more' if len(nonlinear) > 4 else ''}"
    if run.ops.inplace:
        return f"it changes activations in place ({', '.join(sorted(run.ops.inplace))})"
    if run.relu_inplace or run.ops.relus != sum(run.relu_calls.values()) or any(c > 1 for c in run.relu_calls.values()):
        return ("its ReLUs are not separate torch.nn.ReLU modules, each used once, that captum can hook"
                + (" (a TorchScript graph)" if graph else ""))
    return None


def probe(model: nn.Module, shape: tuple[int, ...]) -> Findings:
    """What ``model`` (an :class:`~core.importers.wrapper.ImportedClassifier` taking images of ``shape`` (C, H, W) in
    [0, 1]) offers attribution methods. Its parameters' ``requires_grad`` are set back as they were."""
    notes = dict(getattr(model, "trait_notes", None) or {})
    x = torch.rand((2, *shape), generator=torch.Generator().manual_seed(0))
    run, gradients = _record(model, x, notes)
    taps = getattr(model.net, "layer_outputs", None)
    if taps is not None:  # a TorchScript graph: its layers' outputs from the graph itself
        with torch.no_grad():
            run.outputs = [(f"net.{n}", s, None) for n, s in taps(model.model_input(x))]
    traits: set[str] = {t for t, ok in (("gradients", gradients), ("swappable", "swappable" not in notes)) if ok}
    cam_layers, target = _layers(run.outputs, len(x), traits, notes)
    if run.attention_calls:
        traits.add("attention")
    if gradients:
        why = _relu_note(run, taps is not None)
        if why is None:
            traits.add("relu")
        else:
            notes["relu"] = why
    return Findings(frozenset(traits), cam_layers, target, notes, sorted(run.ops.nonlinear))
