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

from core.modelling.architectures import ARCHITECTURES, Classifier
from core.errors import CheckpointError, TrainingError
from core.modelling.cards import ModelCard, file_sha256, state_mismatch

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
    return (f"ImageNet weights for {arch} are not on this machine. Run `python -m core fetch-weights {arch}` on a "
            f"machine with internet access (it downloads {w.url} to {cache_path(arch)} and checks torchvision's "
            f"published checksum), or download that file yourself and put it there (torchvision's cache; set "
            f"TORCH_HOME to use another folder), or give the file's path (`python -m core fetch-weights {arch} "
            f"--from FILE`, or the weights file box in the app).")


def published_sha256_prefix(arch: str) -> str:
    """The SHA-256 prefix torchvision publishes in the weights' file name (``resnet50-11ad3fa6.pth``)."""
    found = torch.hub.HASH_REGEX.search(Path(weights_enum(arch).url).name)
    return found.group(1) if found else ""


def given_weights() -> dict[str, str]:
    """Weights files users gave per architecture (remembered in the settings file)."""
    from core import settings

    got = settings.load().get("imagenet_weights", {})
    return {str(k): str(v) for k, v in got.items()} if isinstance(got, dict) else {}


def find_weights(arch: str, weights_file: str | Path | None = None) -> Path:
    """The weights file to use: the given one (which must exist), torchvision's cache, or the file a user gave
    earlier (:func:`use_weights_file`)."""
    if weights_file:
        p = Path(weights_file).expanduser()
        if not p.is_file():
            raise TrainingError(f"weights file {p} does not exist")
        return p
    p = cache_path(arch)
    if p.is_file():
        return p
    given = given_weights().get(arch)
    if given and Path(given).is_file():
        return Path(given)
    raise TrainingError(how_to_get(arch))


#: torchvision's published DenseNet files use the old ``norm.1`` key names (its own loader renames them too)
_OLD_DENSENET_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


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
    return {(m.group(1) + m.group(2) if (m := _OLD_DENSENET_KEY.match(k)) else k): v for k, v in state.items()}


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


# --- ImageNet models as a model source --------------------------------------------------------------------------

#: the pseudo-dataset of ImageNet models: any photo, 1,000 classes
IMAGENET = "imagenet"
ID_PREFIX = "imagenet-"


def imagenet_archs() -> list[str]:
    """Architectures offered as ready ImageNet classifiers (``resnet18_small`` is a small-input variant of
    ResNet-18, not a model ImageNet weights were trained for)."""
    return [a for a in ARCHITECTURES.names() if ARCHITECTURES.get(a).imagenet and a != "resnet18_small"]


def imagenet_id(arch: str) -> str:
    return ID_PREFIX + arch


def imagenet_arch(model_id: str) -> str | None:
    """The architecture of an ImageNet model id (``imagenet-resnet50``), else ``None``."""
    arch = model_id[len(ID_PREFIX):] if model_id.startswith(ID_PREFIX) else ""
    return arch if arch in imagenet_archs() else None


def weights_present(arch: str) -> bool:
    try:
        find_weights(arch)
    except TrainingError:
        return False
    return True


def imagenet_card(arch: str, weights_file: str | Path | None = None):
    """The model card of torchvision's ImageNet classifier ``arch``, from the weights' own metadata (1,000 class
    names, the transform's resize / crop / interpolation / mean / std, the published accuracy); offline. The
    weights' digest is filled in when the file is present."""
    w = weights_enum(arch)
    t = w.transforms()
    spec = ARCHITECTURES.get(arch)
    try:
        path = find_weights(arch, weights_file)
    except TrainingError:
        path = None
    published = w.meta.get("_metrics", {}).get("ImageNet-1K", {})
    digest = file_sha256(path) if path else ""
    prefix = published_sha256_prefix(arch)
    # a file that is not torchvision's (random, fine-tuned, another release) fits the shapes but not the published
    # accuracy: the card says so (``published_file`` False) and carries no published accuracy for it
    published_file = None if not digest else (digest.startswith(prefix) if prefix else True)
    if published_file is False:
        published = {}
    return ModelCard(
        id=imagenet_id(arch), dataset=IMAGENET, arch=arch, classes=list(w.meta["categories"]),
        input_size=int(t.crop_size[0]), channels=3, mean=[float(v) for v in t.mean], std=[float(v) for v in t.std],
        target_layer="net." + spec.target_layer, resize_size=int(t.resize_size[0]),
        interpolation=t.interpolation.value,
        training={"source": "torchvision", "weights": spec.imagenet, "title": spec.title, "url": w.url,
                  "file": str(path) if path else None, "recipe": w.meta.get("recipe"),
                  "num_params": w.meta.get("num_params"), "gflops": w.meta.get("_ops"),
                  "file_mib": w.meta.get("_file_size"), "published_imagenet_1k": published,
                  "published_file": published_file, "published_sha256_prefix": prefix, "status": "complete"},
        weights_sha256=digest,
    )


def unpublished_note(card) -> str:
    """Why an ImageNet model's weights file is not torchvision's published one (``""`` when it is, or is absent)."""
    if not card.from_torchvision or card.training.get("published_file") is not False:
        return ""
    name = Path(card.training.get("file") or "?").name
    return (f"its weights file {name} is not torchvision's published {card.arch} file (SHA-256 "
            f"{card.weights_sha256[:8]}…, the published file's starts with {card.training.get('published_sha256_prefix')})"
            f": it may be randomly initialised or trained on something else, torchvision's published accuracy does not "
            f"apply, and how good it is is unknown")


def published_accuracy(card) -> str:
    """``"ImageNet-1K acc@1 80.9%, acc@5 95.4% (published by torchvision, ...)"`` for an ImageNet card with the
    published file (or none yet); for another file, that its accuracy is unknown; else ``""``."""
    if unpublished_note(card):
        return "NOT torchvision's published weights: accuracy unknown"
    got = card.training.get("published_imagenet_1k") or {}
    if not got:
        return ""
    return (f"ImageNet-1K acc@1 {got.get('acc@1', float('nan')):.1f}%, acc@5 {got.get('acc@5', float('nan')):.1f}% "
            "(published by torchvision, not measured here)")


def load_imagenet(arch: str, device=None, weights_file: str | Path | None = None):
    """torchvision's ImageNet classifier ``arch`` as one of our models (images in [0, 1], normalising inside),
    in eval mode, with its card. Weights are read ``weights_only`` from the cache or the given file.

    Raises:
        TrainingError: the weights file is missing (the message says how to get it).
        CheckpointError: the file is unreadable or does not fit the architecture.
    """
    from core import config
    from core.modelling.architectures import build_model

    path = find_weights(arch, weights_file)
    card = imagenet_card(arch, path)
    state = load_state(path)
    model = build_model(arch, len(card.classes), 3, card.mean, card.std)
    own = model.net.state_dict()
    for k in own:  # files from before BatchNorm counted its batches (torchvision's DenseNet) lack the counter
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = own[k]
    problem = state_mismatch(own, state)
    if problem:
        raise CheckpointError(f"{path} does not fit torchvision's {arch}: {problem}. Use torchvision's published file "
                              f"{Path(weights_enum(arch).url).name}")
    model.net.load_state_dict(state)
    model.to(device or config.pick_device()).eval()
    return model, card


def use_weights_file(arch: str, file: str | Path) -> list[str]:
    """Remember a weights file a user has for ``arch`` (checked first: it must load ``weights_only`` and fit the
    architecture). Returns notes (e.g. that it is not torchvision's published file). Nothing is copied."""
    from core import settings
    p = Path(file).expanduser().resolve()
    if not p.is_file():
        raise TrainingError(f"weights file {p} does not exist")
    load_imagenet(arch, device="cpu", weights_file=p)
    notes = []
    prefix = published_sha256_prefix(arch)
    if prefix and not file_sha256(p).startswith(prefix):
        notes.append(f"{p.name} is not torchvision's published file (its SHA-256 does not start with {prefix}); its "
                     f"tensors fit {arch}, so it is used, and the model card records its own digest")
    settings.remember("imagenet_weights", arch, str(p))
    return notes


def fetch_weights(arch: str, url: str | None = None, progress: bool = True) -> Path:
    """Download ``arch``'s ImageNet weights into torchvision's cache (for users with a network), with a progress
    bar, checking the SHA-256 prefix torchvision publishes in the file name; the file appears only once complete
    and checked (torch.hub downloads to a temporary file and moves it). ``url``: a mirror of the same file."""
    dest = cache_path(arch)
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    source = url or weights_enum(arch).url
    try:
        torch.hub.download_url_to_file(source, str(dest), hash_prefix=published_sha256_prefix(arch) or None,
                                       progress=progress)
    except RuntimeError as exc:  # torch.hub's checksum mismatch
        raise CheckpointError(f"the file from {source} failed torchvision's checksum ({exc}); nothing was saved") from exc
    except OSError as exc:  # URLError, HTTPError, no network, disk full
        raise TrainingError(f"could not download {source}: {exc}. Without internet access, download it on another "
                            f"machine and put it at {dest}, or give its path with --from FILE") from exc
    return dest
