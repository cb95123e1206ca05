"""State dicts of the architectures this project builds, whatever their head: the architecture, its input channels,
its class count and its head are read from the tensors' names and shapes.

Each registered architecture (:mod:`core.modelling.architectures`) is built on PyTorch's ``meta`` device (shapes only:
no memory, no initialisation) with the head and channels the file implies, and its tensor names and shapes are held
against the file's; the architecture whose every tensor fits is the one detected. The weights are then assigned to
that skeleton (``load_state_dict(assign=True)``): never loaded half-way, and no random initialisation is paid for.

Heads: the architecture's own last linear layer with any number of classes, or a ``Sequential`` of linear layers in its
place (``fc.0`` / ``fc.3`` …, the common fine-tuning head), rebuilt with a ReLU after each linear layer but the last
and Dropout (the identity at inference) in the other places. A file holds weights, not activations: the ReLU is
assumed, and the card says so. Any other head asks for TorchScript or ONNX, which carry the computation.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from core.errors import CheckpointError
from core.modelling.architectures import ARCHITECTURES


@dataclass(frozen=True)
class Head:
    """A classifier head: the path of the architecture's last linear layer and, for a replaced one, the linear layers
    of the ``Sequential`` in its place as (index, inputs, outputs)."""

    path: str
    layers: tuple[tuple[int, int, int], ...] = ()

    @property
    def replaced(self) -> bool:
        return bool(self.layers)

    def module(self) -> nn.Module:
        """The ``Sequential`` rebuilt from :attr:`layers`."""
        parts: list[nn.Module] = []
        for k, (index, n_in, n_out) in enumerate(self.layers):
            while len(parts) < index:  # the places between linear layers: a ReLU first, then Dropout (identity)
                after_linear = bool(parts) and isinstance(parts[-1], nn.Linear)
                parts.append(nn.ReLU() if after_linear and k > 0 else nn.Identity())
            parts.append(nn.Linear(n_in, n_out))
        return nn.Sequential(*parts)

    def describe(self) -> str:
        if not self.replaced:
            return ""
        steps = []
        for k, (index, n_in, n_out) in enumerate(self.layers):
            if k:
                gap = index - self.layers[k - 1][0] - 1
                steps += ["ReLU"] if gap >= 1 else []
                steps += ["Dropout (the identity at inference)"] * max(0, gap - 1)
            steps.append(f"Linear({n_in}→{n_out})")
        return (f"the head '{self.path}' was rebuilt as {' → '.join(steps)}: the file holds its weights, not its "
                "activations, so ReLU is assumed between linear layers (the usual choice); if yours used another, "
                "import a TorchScript or ONNX file instead, which carries it")

    def to_json(self) -> dict:
        return {"path": self.path, "layers": [list(layer) for layer in self.layers]}

    @classmethod
    def from_json(cls, d: dict) -> "Head":
        return cls(str(d["path"]), tuple(tuple(int(v) for v in layer) for layer in d.get("layers", [])))


def _head_paths(net: nn.Module) -> list[str]:
    """Where a head may have been replaced: the last linear layer, and its parent when that is a ``Sequential`` of
    linear layers, ReLUs and Dropout only (VGG's and EfficientNet's ``classifier``): a parent that also pools or
    flattens is not rebuilt, since a rebuilt head would silently leave that out."""
    last = [name for name, m in net.named_modules() if isinstance(m, nn.Linear)][-1]
    paths = [last]
    if "." in last:
        parent = net.get_submodule(last.rsplit(".", 1)[0])
        if isinstance(parent, nn.Sequential) and all(isinstance(c, (nn.Linear, nn.ReLU, nn.Dropout, nn.Identity))
                                                     for c in parent.children()):
            paths.append(last.rsplit(".", 1)[0])
    return paths


def _first_conv(net: nn.Module) -> str:
    return next(name for name, m in net.named_modules() if isinstance(m, nn.Conv2d)) + ".weight"


def _meta(arch: str, num_classes: int, channels: int, head: Head | None) -> nn.Module:
    with torch.device("meta"):
        net = ARCHITECTURES.get(arch).builder(num_classes, channels)
        if head is not None and head.replaced:
            net.set_submodule(head.path, head.module())
    return net


def head_in(state: dict[str, torch.Tensor], path: str) -> Head | None:
    """The head the file has where the architecture's last linear layer is (``None``: not one this module rebuilds)."""
    weight = state.get(f"{path}.weight")
    if weight is not None and weight.ndim == 2:
        return Head(path)
    pattern = re.compile(rf"^{re.escape(path)}\.(\d+)\.(weight|bias)$")
    keys = [k for k in state if k.startswith(path + ".")]
    found = [pattern.match(k) for k in keys]
    if not keys or not all(found):
        return None
    layers = []
    for index in sorted({int(m.group(1)) for m in found}):
        w = state.get(f"{path}.{index}.weight")
        if w is None or w.ndim != 2:
            return None
        layers.append((index, int(w.shape[1]), int(w.shape[0])))
    if any(a[2] != b[1] for a, b in zip(layers, layers[1:])):
        return None
    return Head(path, tuple(layers))


def shape_problems(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], limit: int = 5) -> str:
    """Missing and unexpected tensors and mismatched shapes, each listed (up to ``limit``) with the total."""
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k}: file {tuple(state[k].shape)}, architecture {tuple(own[k].shape)}"
                  for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]

    def listed(what: str, items: list[str]) -> str:
        return f"{len(items)} {what} ({'; '.join(items[:limit])}{'; …' if len(items) > limit else ''})"

    parts = []
    if missing:
        parts.append(listed("missing tensors", missing))
    if unexpected:
        parts.append(listed("unexpected tensors", unexpected))
    if mismatched:
        parts.append(listed("mismatched shapes", mismatched))
    return "; ".join(parts)


@dataclass
class Fit:
    arch: str
    channels: int
    num_classes: int
    head: Head | None
    problems: str  #: "" when every tensor fits
    matched: int  #: tensors of the file whose name and shape fit


def _try(arch: str, state: dict[str, torch.Tensor]) -> Fit:
    default = _meta(arch, 2, 3, None)
    paths = _head_paths(default)
    path, head = next(((p, h) for p in paths if (h := head_in(state, p)) is not None), (paths[0], None))
    conv = _first_conv(default)
    channels = int(state[conv].shape[1]) if conv in state and state[conv].ndim == 4 else 3
    if head is None:
        theirs = sorted(k for k in state if k.startswith(path.split(".")[0] + "."))[:4]
        return Fit(arch, channels, 0, None, f"its head at '{path}' is not a linear layer or a Sequential of linear "
                   f"layers (the file has {', '.join(theirs) or 'nothing there'}): import a TorchScript or ONNX file "
                   "instead, which carries the head's computation", 0)
    num_classes = head.layers[-1][2] if head.replaced else int(state[f"{path}.weight"].shape[0])
    if channels not in (1, 3) or num_classes < 2:
        what = f"{channels} input channels" if channels not in (1, 3) else f"{num_classes} output"
        return Fit(arch, channels, num_classes, head, f"the file's model has {what} (1 or 3 channels and at least 2 "
                                                      "classes are supported)", 0)
    own = _meta(arch, num_classes, channels, head).state_dict()
    matched = sum(1 for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape))
    return Fit(arch, channels, num_classes, head, shape_problems(own, state), matched)


def detect(state: dict[str, torch.Tensor], arch: str | None = None) -> Fit:
    """The architecture the file fits (``arch`` if given: it must fit), with its channels, classes and head.

    Raises :class:`CheckpointError` with the missing / unexpected tensors and mismatched shapes when nothing (or not
    the given architecture) fits, and asks for ``arch`` when several do."""
    if arch is not None:
        fit = _try(arch, state)
        if fit.problems:
            raise CheckpointError(f"the file does not fit architecture {arch!r}: {fit.problems}")
        return fit
    fits = [_try(a, state) for a in ARCHITECTURES.names()]
    good = [f for f in fits if not f.problems]
    if len(good) == 1:
        return good[0]
    if len(good) > 1:
        raise CheckpointError(f"the file fits several architectures ({', '.join(f.arch for f in good)}): give the one "
                              "it is with --arch")
    best = max(fits, key=lambda f: f.matched)
    hint = ""
    if any(k.startswith(("conv_stem", "blocks.", "patch_embed", "stem.", "stages.")) for k in state):
        hint = (" Its tensor names look like a timm model's: give --arch timm:NAME (the name given to "
                "timm.create_model).")
    raise CheckpointError(f"no architecture this project builds fits the file ({', '.join(ARCHITECTURES.names())}). "
                          f"The closest is {best.arch} ({best.matched} of {len(state)} tensors fit): {best.problems}."
                          f"{hint} A model of another architecture can be imported as a TorchScript or ONNX file.")


def build(fit: Fit, state: dict[str, torch.Tensor]) -> nn.Module:
    """The architecture with the file's weights (assigned to a meta skeleton: nothing initialised at random)."""
    net = _meta(fit.arch, fit.num_classes, fit.channels, fit.head)
    own = net.state_dict()
    state = dict(state)
    for k, v in own.items():  # files from before BatchNorm counted its batches lack the counter
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = torch.zeros((), dtype=torch.long)
    problems = shape_problems(own, state)
    if problems:
        raise CheckpointError(f"the file does not fit architecture {fit.arch!r}: {problems}")
    net.load_state_dict(state, strict=True, assign=True)
    left = [n for n, t in [*net.named_parameters(), *net.named_buffers()] if t.is_meta]
    if left:
        raise CheckpointError(f"the file leaves {len(left)} tensors of {fit.arch} unset (e.g. {left[0]})")
    return net.eval()


# --- the format ----------------------------------------------------------------------------------------------------

WEIGHTS = "weights.pt"


def _write_state(net: nn.Module):
    def write(folder) -> str:
        from core.io import atomic_write_with

        state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
        atomic_write_with(folder / WEIGHTS, lambda fh: torch.save(state, fh))
        return WEIGHTS

    return write


def open_file(path, given: dict):
    """A state dict file (``.pt``, ``.pth``, ``.bin``, ``.ckpt``, ``.safetensors``) of an architecture this project
    builds, as an :class:`~core.importers.draft.Opened` (a timm model's goes to :mod:`.timm_models`)."""
    from core.importers.draft import Opened
    from core.importers.files import tensors

    found = tensors(path)
    arch = given.get("arch")
    if arch and arch not in ARCHITECTURES:
        raise CheckpointError(f"unknown architecture {arch!r}: this project builds {', '.join(ARCHITECTURES.names())}; "
                              "a timm model is timm:NAME")
    fit = detect(found.state, arch)
    net = build(fit, found.state)
    where = "given" if arch else "detected from the tensors' names and shapes"
    values = {"arch": (fit.arch, where), "channels": (fit.channels, "the file (its first convolution)")}
    if found.normalisation:
        values["mean"] = (found.normalisation[0], "the file (this project's own normalisation)")
        values["std"] = (found.normalisation[1], "the file (this project's own normalisation)")
    notes = list(found.notes) + ([fit.head.describe()] if fit.head and fit.head.replaced else [])
    if not arch:
        notes.insert(0, f"architecture {fit.arch} detected: every tensor's name and shape fits it "
                        f"({fit.channels} input channel{'s' * (fit.channels != 1)}, {fit.num_classes} classes)")
    source = {"fit": {"channels": fit.channels, "num_classes": fit.num_classes, "head": fit.head.to_json()}}
    spec = ARCHITECTURES.get(fit.arch)
    return Opened("state_dict", net, fit.arch, values, notes, source, write=_write_state(net),
                  num_classes=fit.num_classes, target_layer="net." + spec.target_layer)


def load(folder, card) -> nn.Module:
    from core.importers.files import tensors

    got = card.source.get("fit", {})
    fit = Fit(card.arch, int(got.get("channels", card.channels)), int(got.get("num_classes", len(card.classes))),
              Head.from_json(got["head"]) if got.get("head") else None, "", 0)
    return build(fit, tensors(folder / card.model_file).state)
