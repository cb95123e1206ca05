"""From a notebook: explain any ``torch.nn.Module`` with no card, and save one so the dashboard opens it.

>>> import torchvision
>>> from core.importers import explain, save_module
>>> net = torchvision.models.resnet18(num_classes=9).eval()     # your model, your preprocessing
>>> maps = explain(net, x, methods=["grad_cam", "integrated_gradients"])   # x: (N, 3, 224, 224), preprocessed
>>> maps["grad_cam"][0].attribution.shape                          # (224, 224): one Explanation per image
>>> save_module(net, "my-resnet", classes=PATH_CLASSES, input_size=224)   # then in every model list

A module that is not one of this project's models is explained as it is: its inputs are taken as already
preprocessed (any finite values, not only [0, 1]), the target is its prediction, its CAM layer is detected by running
it (:mod:`.probe`), and every method's baseline is in its own input space (captum's defaults: zeros). The module is
never changed: methods that hook or swap layers run on a copy (:mod:`core.modelling.sharing`).
"""
from __future__ import annotations

import os
import tempfile
import weakref
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from core.errors import CheckpointError
from core.importers.probe import probe
from core.importers.wrapper import ImportedClassifier


class ForeignModule(ImportedClassifier):
    """A user's module as the engine takes it: inputs already preprocessed (no normalisation, any finite range),
    outputs read as logits, traits and CAM layers found by running it."""

    #: the engine's input check: any finite values (the module's own preprocessing has been applied)
    input_range = None

    def __init__(self, net: nn.Module, channels: int) -> None:
        super().__init__(net, [0.0] * channels, [1.0] * channels)


_wrapped: "weakref.WeakKeyDictionary[nn.Module, dict[tuple, ForeignModule]]" = weakref.WeakKeyDictionary()


def as_model(module: nn.Module, image_shape: tuple[int, ...]) -> nn.Module:
    """``module`` itself when it is made for this project's engine (it takes images in [0, 1] and declares its CAM
    layer: a Classifier, an imported model, a model built by hand to the engine's contract); else it wrapped once per
    input shape as a :class:`ForeignModule`, probed, reused while the module lives."""
    if isinstance(module, ImportedClassifier) or hasattr(module, "normalize") or hasattr(module, "target_layer"):
        return module
    known = _wrapped.setdefault(module, {})
    key = tuple(image_shape)
    if key not in known:
        was = module.training
        module.eval()
        model = ForeignModule(module, image_shape[0])
        found = probe(model, key)
        model.traits, model.cam_layers, model.trait_notes = found.traits, found.cam_layers, found.notes
        model.target_layer = found.target_layer
        module.train(was)
        known[key] = model
    return known[key]


def explain(model: nn.Module, images: torch.Tensor, method: str | None = None, target: int | Sequence[int] | None = None,
            *, methods: Sequence[str] | None = None, layer: str | None = None, **kwargs: Any):
    """Explain with one method or several, on one of this project's models or on any ``torch.nn.Module``.

    ``method="NAME"``: one image (C, H, W) or (1, C, H, W), one :class:`~core.explainers.Explanation`, as
    :func:`core.explainers.explain`. ``methods=[...]``: a batch (N, C, H, W) (or one image), batched, returning
    ``{method: [Explanation per image]}``.

    For a foreign module, ``images`` are its own inputs (already preprocessed), ``layer`` names a CAM layer as the
    module names it (``"layer4"``; default: detected), and the rest is as :func:`core.explainers.explain_batch`
    (``target`` per image or one for all, ``background``, ``progress``, ``cancel``, the methods' parameters; a
    parameter one of the methods does not take is given only to those that do)."""
    from core.explainers import explain as explain_one, explain_batch, get_method

    if (method is None) == (methods is None):
        raise CheckpointError("give method=NAME (one image) or methods=[NAMES] (a batch)")
    x = images if isinstance(images, torch.Tensor) else torch.as_tensor(images)
    m = as_model(model, tuple(x.shape[-3:]))
    if layer is not None:
        kwargs["layer"] = layer if m is model or layer.startswith("net.") else f"net.{layer}"
    if method is not None:
        return explain_one(m, x, method, target, **kwargs)
    common = {"background", "progress", "cancel", "chunk_size"}
    out = {}
    for name in methods:
        takes = {p.name for p in get_method(name).params} | common
        out[name] = explain_batch(m, x, name, targets=target, **{k: v for k, v in kwargs.items() if k in takes})
    return out


def save_module(model: nn.Module, model_id: str, *, classes: Sequence[str], input_size: int,
                mean: Sequence[float] | None = None, std: Sequence[float] | None = None, channel_order: str = "rgb",
                pixel_range: int = 1, channels: int | None = None, models_dir: str | os.PathLike | None = None,
                replace: bool = False) -> Path:
    """Save a notebook's module with its card so the dashboard opens it: as a state dict when its tensors fit an
    architecture this project builds, else as TorchScript (traced, and held against the module on a probe batch).
    ``mean`` / ``std``: the normalisation its inputs need (default ImageNet's), in ``pixel_range``."""
    from core.importers import state_dicts
    from core.importers.importing import import_model

    module = model.eval()
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    given = dict(model_id=model_id, classes=list(classes), input_size=input_size, channel_order=channel_order,
                 pixel_range=str(pixel_range), mean=list(mean) if mean else None, std=list(std) if std else None,
                 channels=str(channels) if channels else None)
    with tempfile.TemporaryDirectory(prefix="xai-save-module-") as tmp:
        try:
            state_dicts.detect(state)
            path = Path(tmp) / f"{model_id}.pt"
            torch.save(state, path)
        except CheckpointError:
            c = channels or 3
            example = torch.randn((2, c, input_size, input_size), generator=torch.Generator().manual_seed(0))
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(module, example[:1], check_trace=False)
                with torch.no_grad():
                    want, got = module(example), traced(example)
                from core.importers.wrapper import as_logits

                if not torch.allclose(as_logits(want), as_logits(got), rtol=1e-4, atol=1e-5):
                    raise CheckpointError("the module traced to TorchScript gives other outputs than the module on a "
                                          "probe batch (its forward branches on its input's values): save it as ONNX "
                                          "and import that") from None
                path = Path(tmp) / f"{model_id}.ts"
                torch.jit.save(traced, str(path))
        saved, _ = import_model(path, models_dir, replace, **{k: v for k, v in given.items() if v is not None})
    return saved
