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


def probe(model: nn.Module, shape: tuple[int, ...]) -> Findings:
    """What ``model`` (an :class:`~core.importers.wrapper.ImportedClassifier` taking images of ``shape`` (C, H, W) in
    [0, 1]) offers attribution methods. Its parameters' ``requires_grad`` are set back as they were."""
    notes = dict(getattr(model, "trait_notes", None) or {})
    x = torch.rand((2, *shape), generator=torch.Generator().manual_seed(0))
    outputs: list[tuple[str, tuple[int, ...], nn.Module]] = []  # in the order modules finish
    relu_calls: Counter[str] = Counter()
    relu_inplace: list[str] = []
    mha_calls = 0

    def hook(name: str):
        def record(module, args, out):
            nonlocal mha_calls
            if isinstance(module, nn.ReLU):
                relu_calls[name] += 1
                if module.inplace:
                    relu_inplace.append(name)
            if isinstance(module, nn.MultiheadAttention):
                mha_calls += 1
            if isinstance(out, torch.Tensor):
                outputs.append((name, tuple(out.shape), module))
        return record

    handles = []
    for name, module in model.named_modules():
        if not name.startswith("net.") or isinstance(module, torch.jit.ScriptModule):
            continue
        handles.append(module.register_forward_hook(hook(name)))
    saved = [(p, p.requires_grad) for p in model.parameters()]
    ops = _Ops()
    gradients = "gradients" not in notes
    try:
        for p, _ in saved:
            p.requires_grad_(False)
        xg = x.clone().requires_grad_(gradients)
        with ops:
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
    taps = getattr(model.net, "layer_outputs", None)
    if taps is not None:  # a TorchScript graph: its layers' outputs from the graph itself
        with torch.no_grad():
            outputs = [(f"net.{n}", s, None) for n, s in taps(model.model_input(x))]
    traits: set[str] = set()
    if gradients:
        traits.add("gradients")
    if "swappable" not in notes:
        traits.add("swappable")
    tokens = [(n, s, m) for n, s, m in outputs if _token_grid(s) and (m is None or _is_norm(m))]
    spatial = [(n, s) for n, s, _ in outputs if len(s) == 4 and s[0] == len(x) and min(s[2:]) >= 2]
    cam_layers: list[str] = []
    target = None
    if tokens:
        traits.add("tokens")
        cam_layers = list(dict.fromkeys(n for n, _, _ in tokens))
        parents = Counter(n.rsplit(".", 1)[0] for n in cam_layers)
        blocks = [n for n in cam_layers if parents[n.rsplit(".", 1)[0]] >= 2]
        last_block = blocks[-1].rsplit(".", 1)[0] if blocks else None
        target = next((n for n in cam_layers if last_block and n.rsplit(".", 1)[0] == last_block), cam_layers[-1])
    elif spatial:
        traits.add("spatial")
        cam_layers = list(dict.fromkeys(n for n, _ in spatial))
        target = spatial[-1][0]
    else:
        notes.setdefault("spatial", "no layer of it hands on feature maps of at least 2 x 2")
    if mha_calls:
        traits.add("attention")
    nonlinear = sorted(ops.nonlinear)
    relu_modules = sum(relu_calls.values())
    if not gradients:
        pass
    elif nonlinear:
        notes["relu"] = f"it computes {', '.join(nonlinear[:4])}{' and more' if len(nonlinear) > 4 else ''}"
    elif ops.inplace:
        notes["relu"] = f"it changes activations in place ({', '.join(sorted(ops.inplace))})"
    elif relu_inplace or ops.relus != relu_modules or any(c > 1 for c in relu_calls.values()):
        notes["relu"] = ("its ReLUs are not separate torch.nn.ReLU modules, each used once, that captum can hook"
                         + (" (a TorchScript graph)" if taps is not None else ""))
    else:
        traits.add("relu")
    return Findings(frozenset(traits), cam_layers, target, notes, nonlinear)
