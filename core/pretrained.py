"""torchvision's ImageNet weights: where they are, how to get them, and initialising our models from them.

Weights are looked up where torchvision itself caches them (``<torch hub dir>/checkpoints/<file name>``,
i.e. ``$TORCH_HOME/hub/checkpoints`` or ``~/.cache/torch/hub/checkpoints``) or taken from a file the user
gives. They are never downloaded implicitly: where they are missing the message says which file to fetch
from where and where to put it. Loading is ``weights_only``.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from .architectures import ARCHITECTURES, Classifier
from .errors import CheckpointError, TrainingError

#: ImageNet normalisation, from torchvision's weight transforms (the same for every family we use)
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def weights_enum(arch: str):
    spec = ARCHITECTURES.get(arch)
    if not spec.imagenet:
        raise TrainingError(f"architecture {arch!r} has no ImageNet weights; those that do: "
                            + ", ".join(a for a in ARCHITECTURES.names() if ARCHITECTURES.get(a).imagenet))
    from torchvision.models import get_weight

    return get_weight(spec.imagenet)


def has_imagenet(arch: str) -> bool:
    return bool(ARCHITECTURES.get(arch).imagenet)


def cache_path(arch: str) -> Path:
    """Where torchvision looks for (and would download) this architecture's ImageNet weights."""
    w = weights_enum(arch)
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(w.url).name


def how_to_get(arch: str) -> str:
    w = weights_enum(arch)
    return (f"ImageNet weights for {arch} are not on this machine. Download {w.url} and put it at {cache_path(arch)} "
            f"(torchvision's cache; set TORCH_HOME to use another folder), or give the file's path as the weights "
            f"file.")


def find_weights(arch: str, weights_file: str | Path | None = None) -> Path:
    """The weights file to use: the given one (which must exist) or the one in torchvision's cache."""
    if weights_file:
        p = Path(weights_file).expanduser()
        if not p.is_file():
            raise TrainingError(f"weights file {p} does not exist")
        return p
    p = cache_path(arch)
    if not p.is_file():
        raise TrainingError(how_to_get(arch))
    return p


def load_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable PyTorch state dict of tensors ({type(exc).__name__}); "
                              "use torchvision's published file") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return state


def init_from_imagenet(model: Classifier, arch: str, weights_file: str | Path | None = None) -> list[str]:
    """Copy ImageNet weights into ``model.net`` (all but the classifier head), in place; returns notes on what
    was adapted. A one-channel model gets the first convolution's weights summed over the colour channels (a
    grey image then gives the response the RGB filter gives to that grey repeated three times)."""
    path = find_weights(arch, weights_file)
    state = load_state(path)
    own = model.net.state_dict()
    notes = [f"initialised from ImageNet weights {path.name}"]
    head = re.compile(r"^(fc|classifier|head|heads)\.")
    loaded, skipped = {}, []
    for k, v in state.items():
        if head.match(k):
            continue
        if k not in own:
            skipped.append(k)
            continue
        if tuple(v.shape) != tuple(own[k].shape):
            if v.ndim == 4 and v.shape[1] == 3 and own[k].shape[1] == 1 and v.shape[2:] == own[k].shape[2:]:
                loaded[k] = v.sum(dim=1, keepdim=True)
                notes.append(f"{k}: RGB filters summed over colour for one-channel images")
                continue
            skipped.append(k)
            notes.append(f"{k}: shape {tuple(v.shape)} does not fit {tuple(own[k].shape)}, kept at random init")
            continue
        loaded[k] = v
    missing_body = [k for k in own if k not in loaded and not head.match(k) and not k.endswith("num_batches_tracked")]
    if len(loaded) < len(own) // 2:
        raise CheckpointError(f"{path} does not look like ImageNet weights for {arch}: only {len(loaded)} of "
                              f"{len(own)} tensors fit")
    model.net.load_state_dict(loaded, strict=False)
    if missing_body:
        notes.append(f"{len(missing_body)} tensors kept at random init (e.g. {missing_body[0]})")
    return notes
