"""From an opened model file to a draft: the model wrapped to take images in [0, 1], and the card with every value
and where it came from (the user, the file, detection by running the model, or a default).

Each format's reader (:mod:`.formats`) returns an :class:`Opened`: the module as the file defines it and what the file
says. :func:`assemble` adds what the user gave, runs the model once to find its outputs, channels and traits, and
refuses what contradicts itself (a head of 9 outputs with 3 class names, a CAM layer the model does not have), with
the numbers.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from core.errors import CheckpointError
from core.importers.matching import dataset_for
from core.importers.probe import Findings, probe
from core.importers.wrapper import ImportedClassifier
from core.modelling.cards import ModelCard, validate_model_id

#: the card values an import settles, in the order a form shows them
FIELDS = ("model_id", "arch", "classes", "input_size", "channels", "mean", "std", "channel_order", "pixel_range",
          "resize_size", "interpolation", "output", "target_layer")
#: ImageNet's statistics, the default for a colour model that says nothing (most fine-tuned models keep them)
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
GREY_MEAN, GREY_STD = [0.449], [0.226]


@dataclass
class Opened:
    """A model file read by its format: the module (taking the model's own input) and what the file says.

    ``values``: card values the file knows, each ``(value, where)``. ``source``: what loading it again needs (kept on
    the card). ``write(folder)`` writes the files the model keeps, returning the name of the one its digest is of.
    """

    format: str
    net: nn.Module
    arch: str
    values: dict[str, tuple[Any, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)
    write: Callable[[Path], str] | None = None
    #: the file in the model's folder that its digest is of (``write`` returns this name)
    model_file: str = "weights.pt"
    layout: str = "nchw"
    fixed_batch: int | None = None
    #: the model's outputs when it is known without running it
    num_classes: int | None = None
    #: the architecture's own CAM layer (registered architectures), else found by running it
    target_layer: str | None = None


@dataclass
class Draft:
    """An import ready to check and save: the model, its card, where each card value came from, and notes."""

    format: str
    model: ImportedClassifier
    card: ModelCard
    origin: dict[str, str]
    notes: list[str]
    findings: Findings
    write: Callable[[Path], str]

    def lines(self) -> list[str]:
        """The card's values and where each came from, for a terminal or a page."""
        c = self.card
        shown = {"model_id": c.id, "arch": c.arch, "classes": ", ".join(c.classes), "input_size": c.input_size,
                 "channels": c.channels, "mean": c.mean, "std": c.std, "channel_order": c.channel_order,
                 "pixel_range": c.pixel_range, "resize_size": c.resize_size, "interpolation": c.interpolation,
                 "output": c.output, "target_layer": c.target_layer}
        return [f"{k}: {v}  ({self.origin.get(k, 'default')})" for k, v in shown.items()]


def _pick(name: str, given: dict[str, Any], opened: Opened, default: Any, why: str = "default") -> tuple[Any, str]:
    if name in given:
        return given[name], "given"
    if name in opened.values:
        return opened.values[name]
    return default, why


def default_size(arch: str) -> int:
    from core.modelling.architectures import ARCHITECTURES

    if arch in ARCHITECTURES:
        lo, hi = ARCHITECTURES.get(arch).sizes
        return 224 if lo <= 224 <= hi else min(max(64, lo), hi)
    return 224


def slug(name: str) -> str:
    """A model id from a file name: letters, digits, ``-``, ``_`` and ``.`` only."""
    s = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")[:100]
    return s or "imported-model"


def _outputs(model: nn.Module, shape: tuple[int, ...]) -> torch.Tensor:
    x = torch.rand((2, *shape), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model(x)


def _channels(opened: Opened, given: dict[str, Any], wrap: Callable[[int], ImportedClassifier], size: int
              ) -> tuple[int, str]:
    if "channels" in given:
        return given["channels"], "given"
    if "channels" in opened.values:
        return opened.values["channels"]
    if "mean" in given:
        return len(given["mean"]), "from the mean given"
    errors = []
    for channels in (3, 1):  # a file that does not say: the one the model runs on
        try:
            _outputs(wrap(channels), (channels, size, size))
            return channels, "detected (the model runs on it)"
        except Exception as exc:  # noqa: BLE001 - the other channel count is tried next
            errors.append(f"{channels} channels: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
    raise CheckpointError(f"the model runs on neither 3 nor 1 channels at {size} px ({'; '.join(errors)}): give "
                          "the input size and channels it was trained with")


def _preprocessing(opened: Opened, given: dict[str, Any], origin: dict[str, str]) -> dict[str, Any]:
    """The card's input values: size, channel order, pixel range, resize, interpolation, channels, mean and std, each
    given, from the file, detected or defaulted (``origin`` says which), checked against each other."""
    values: dict[str, Any] = {}
    for name, default in (("input_size", default_size(opened.arch)), ("channel_order", "rgb"), ("pixel_range", 1),
                          ("resize_size", 0), ("interpolation", "bilinear")):
        values[name], origin[name] = _pick(name, given, opened, default)
    size = values["input_size"]
    values["channels"], origin["channels"] = _channels(opened, given, lambda c: _wrap(opened, values, c), size)
    grey = values["channels"] == 1
    why = "default: ImageNet's (give the model's own if it was trained with others)"
    mean, origin["mean"] = _pick("mean", given, opened, GREY_MEAN if grey else IMAGENET_MEAN, why)
    std, origin["std"] = _pick("std", given, opened, GREY_STD if grey else IMAGENET_STD, why)
    if values["pixel_range"] == 255 and origin["mean"].startswith("default"):
        mean, std = [m * 255 for m in mean], [s * 255 for s in std]
    for name, got in (("mean", mean), ("std", std)):
        if len(got) != values["channels"]:
            raise CheckpointError(f"{name} has {len(got)} values for a {values['channels']}-channel model: give one "
                                  "per channel")
    values["mean"], values["std"] = [float(v) for v in mean], [float(v) for v in std]
    ModelCard(id="draft", dataset="imported", arch=opened.arch, classes=["a", "b"], target_layer="net",
              source={"format": opened.format}, **values).validate()  # a mean outside the pixel range, … : refused
    return values


def _wrap(opened: Opened, values: dict[str, Any], channels: int, output: str = "logits") -> ImportedClassifier:
    """The module as every model here is used: images in [0, 1] (the card's normalisation when it is settled)."""
    mean, std = [0.0] * channels, [1.0] * channels
    if "mean" in values:
        mean, std = ModelCard(id="draft", dataset="imported", arch=opened.arch, classes=["a", "b"], target_layer="net",
                              **values).input_normalisation()
    return ImportedClassifier(opened.net, mean, std, channel_order=values["channel_order"], layout=opened.layout,
                              output=output, fixed_batch=opened.fixed_batch)


def _running(opened: Opened, given: dict[str, Any], values: dict[str, Any], origin: dict[str, str]
             ) -> tuple[ImportedClassifier, int]:
    """The wrapped model and its number of outputs, found by running it; outputs that are probabilities (a softmax
    the file does not show) detected. Sets ``values["output"]``."""
    channels, size = values["channels"], values["input_size"]
    output, origin["output"] = _pick("output", given, opened, "logits")
    model = _wrap(opened, values, channels, output)
    try:
        out = _outputs(model, (channels, size, size))
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - the model's own error, said with the input it got
        raise CheckpointError(f"the model fails on {channels}-channel {size}x{size} images ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200]}): give the input size and channels it was trained "
                              "with") from exc
    k = int(out.shape[1])
    if opened.num_classes is not None and opened.num_classes != k:
        raise CheckpointError(f"the model returns {k} scores but its head has {opened.num_classes} outputs")
    sums_to_one = bool((out >= 0).all()) and torch.allclose(out.sum(dim=1), torch.ones(len(out)), atol=1e-4)
    if output == "logits" and "output" not in given and "output" not in opened.values and k > 1 and sums_to_one:
        output, origin["output"] = "probabilities", "detected: its outputs are non-negative and sum to 1 (a softmax)"
        model = _wrap(opened, values, channels, output)
    if output == "probabilities":
        opened.notes.append("the model returns probabilities: the methods explain the log-probability of the class "
                            "(its softmax is the same), and predictions are unchanged")
    values["output"] = output
    return model, k


def _classes(opened: Opened, given: dict[str, Any], origin: dict[str, str], k: int) -> list[str]:
    classes, origin["classes"] = _pick("classes", given, opened, [f"class {i}" for i in range(k)],
                                       "default: no names in the file or given (give the model's class names)")
    if len(classes) != k:
        where = "given" if origin["classes"] == "given" else "in the file"
        raise CheckpointError(f"the model has {k} outputs but {len(classes)} class names are {where} "
                              f"({', '.join(classes[:5])}{'…' if len(classes) > 5 else ''}): give one name per output, "
                              "in the model's output order")
    return list(classes)


def _target_layer(findings: Findings, opened: Opened, given: dict[str, Any], origin: dict[str, str]) -> str | None:
    """The CAM layer: given (as the model names it, with or without ``net.``), the architecture's own, or detected."""
    target = given.get("target_layer")
    if target is not None:
        target = target if target.startswith("net.") or f"net.{target}" not in findings.cam_layers else f"net.{target}"
        if target not in findings.cam_layers:
            shown = ", ".join(n[4:] for n in findings.cam_layers[-6:]) or "none"
            raise CheckpointError(f"the model has no layer {target[4:] if target.startswith('net.') else target!r} "
                                  f"that CAM methods can weight; its last such layers: {shown}")
        origin["target_layer"] = "given"
        return target
    if opened.target_layer and opened.target_layer in findings.cam_layers:
        origin["target_layer"] = "the architecture's own"
        return opened.target_layer
    origin["target_layer"] = ("detected: the last block of the transformer, tokens reshaped to a grid"
                              if "tokens" in findings.traits else "detected: the last convolutional block"
                              if findings.target_layer else "none: CAM methods do not apply")
    return findings.target_layer


def assemble(opened: Opened, given: dict[str, Any], file_name: str, source_sha256: str) -> Draft:
    """The draft of an import: ``given`` (parsed settings, :mod:`.settings`) over what the file says over defaults."""
    if opened.write is None:
        raise CheckpointError(f"the {opened.format} reader gave nothing to save")
    origin: dict[str, str] = {}
    values = _preprocessing(opened, given, origin)
    model, k = _running(opened, given, values, origin)
    classes = _classes(opened, given, origin, k)
    findings = probe(model, (values["channels"], values["input_size"], values["input_size"]))
    model.traits, model.cam_layers, model.trait_notes = findings.traits, findings.cam_layers, findings.notes
    model.target_layer = _target_layer(findings, opened, given, origin)
    model.eval()
    model_id = given.get("model_id") or slug(Path(file_name).stem or file_name)
    origin["model_id"] = "given" if "model_id" in given else "from the file's name"
    origin["arch"] = "given" if "arch" in given else opened.values.get("arch", (None, "detected"))[1]
    validate_model_id(model_id)
    dataset, mapping = dataset_for(classes)
    source = {"format": opened.format, "name": file_name, "sha256": source_sha256, "model_file": opened.model_file,
              "layout": opened.layout, **({"fixed_batch": opened.fixed_batch} if opened.fixed_batch else {}),
              **opened.source, "origin": dict(origin), "notes": list(opened.notes), "traits": sorted(findings.traits),
              "trait_notes": findings.notes}
    card = ModelCard(id=model_id, dataset=dataset, arch=opened.arch, classes=classes,
                     target_layer=model.target_layer or "net", **values,
                     training={"source": "imported", "status": "complete",
                               **({"class_mapping": mapping} if mapping else {})}, source=source)
    card.validate()
    return Draft(opened.format, model, card, origin, list(opened.notes), findings, opened.write)
