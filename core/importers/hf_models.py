"""Hugging Face transformers image classifiers, from a ``save_pretrained`` folder (``config.json`` with ``id2label``,
``preprocessor_config.json``, ``model.safetensors``): loaded with ``AutoModelForImageClassification.from_pretrained``
from the folder only (``local_files_only``: nothing is fetched from a hub; code shipped with a model is never run),
the classes from ``id2label``, the preprocessing from the image processor's configuration, the logits from the
output's ``.logits`` (:func:`core.importers.wrapper.as_logits`).
"""
from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Iterator

from torch import nn

from core.errors import CheckpointError
from core.importers.extras import require

FOLDER = "hf"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
CONFIG_FILES = ("config.json", "preprocessor_config.json")
RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic", 1: "bicubic", 4: "bilinear", 5: "bicubic"}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """transformers' own progress bars and logs off while it loads (a terminal's or a server log's, not ours)."""
    logging = require("transformers", "a Hugging Face model").utils.logging
    level = logging.get_verbosity()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        logging.enable_progress_bar()


def _model(folder: Path) -> nn.Module:
    transformers = require("transformers", "a Hugging Face model")
    try:
        with _quiet():
            model = transformers.AutoModelForImageClassification.from_pretrained(
                str(folder), local_files_only=True, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - transformers' errors, said in one line
        text = str(exc).splitlines()[0][:300]
        raise CheckpointError(f"transformers cannot load an image classifier from {folder.name}/ ({type(exc).__name__}: "
                              f"{text}); it needs config.json and model.safetensors from save_pretrained") from exc
    return model.eval()


def preprocessing(cfg: dict) -> dict:
    """Card values from an image processor's configuration."""
    where = "the folder's preprocessor_config.json"
    values: dict = {}
    size = cfg.get("size") or {}
    if isinstance(size, int):
        size = {"shortest_edge": size}
    crop = cfg.get("crop_size") if cfg.get("do_center_crop") else None
    if isinstance(crop, int):
        crop = {"height": crop, "width": crop}
    side = None
    if crop:
        side = crop.get("height")
        if size.get("shortest_edge"):
            values["resize_size"] = (int(size["shortest_edge"]), where)
    elif "height" in size:
        if size["height"] != size.get("width", size["height"]):
            raise CheckpointError(f"the image processor resizes to {size['height']}x{size['width']}; only square inputs "
                                  "are supported")
        side = size["height"]
    elif size.get("shortest_edge"):
        side = int(size["shortest_edge"])
        pct = cfg.get("crop_pct")
        if pct and side < 384:  # ConvNeXt's processor: resize to side / crop_pct, then crop side
            values["resize_size"] = (int(side / pct), f"{where} (crop_pct {pct})")
    if side:
        values["input_size"] = (int(side), where)
    if cfg.get("resample") in RESAMPLE:
        values["interpolation"] = (RESAMPLE[cfg["resample"]], where)
    rescale = cfg.get("rescale_factor", 1 / 255) if cfg.get("do_rescale", True) else 1.0
    if not math.isclose(rescale, 1 / 255, rel_tol=1e-3) and not math.isclose(rescale, 1.0):
        raise CheckpointError(f"the image processor scales pixels by {rescale}; only 1/255 ([0, 1]) or 1 ([0, 255]) "
                              "are supported")
    values["pixel_range"] = (1 if math.isclose(rescale, 1 / 255, rel_tol=1e-3) else 255, where)
    if cfg.get("do_normalize", True) and cfg.get("image_mean") and cfg.get("image_std"):
        values["mean"] = ([float(v) for v in cfg["image_mean"]], where)
        values["std"] = ([float(v) for v in cfg["image_std"]], where)
    elif not cfg.get("do_normalize", True):
        n = 3
        values["mean"], values["std"] = ([0.0] * n, f"{where} (no normalisation)"), ([1.0] * n, f"{where} (no normalisation)")
    return values


def _classes(config: dict) -> list[str] | None:
    got = config.get("id2label") or {}
    try:
        names = [str(got[k]) for k in sorted(got, key=lambda k: int(k))]
    except (TypeError, ValueError):
        return None
    if len(names) < 2 or all(n == f"LABEL_{i}" for i, n in enumerate(names)):  # transformers' placeholder names
        return None
    return names


def open_folder(path: Path, given: dict):
    from core.importers.draft import Opened
    from core.importers.store import copy_into

    weights = next((f for f in WEIGHT_FILES if (path / f).is_file()), None)
    if weights is None:
        raise CheckpointError(f"{path.name}/ has no weights file ({', '.join(WEIGHT_FILES)})")
    config = json.loads((path / "config.json").read_text())
    net = _model(path)
    values: dict = {"arch": (f"hf:{config.get('model_type', 'model')}", "the folder's config.json"),
                    "channels": (int(config.get("num_channels", 3)), "the folder's config.json")}
    names = _classes(config)
    if names:
        values["classes"] = (names, "the folder's config.json (id2label)")
    notes = [f"loaded with transformers' AutoModelForImageClassification ({type(net).__name__}) from the folder only"]
    pre = path / "preprocessor_config.json"
    if pre.is_file():
        cfg = json.loads(pre.read_text())
        values.update(preprocessing(cfg))
        if "height" in (cfg.get("size") or {}) and not cfg.get("do_center_crop"):
            notes.append("the image processor resizes images straight to a square; here the shorter side is resized "
                         "and the centre cropped, which is the same for square images and keeps a photo's proportions")
    else:
        notes.append("the folder has no preprocessor_config.json: give the input size, mean and std")
    if config.get("num_labels") and "classes" not in values:
        notes.append("config.json has no class names (id2label): give them")

    def write(folder: Path) -> str:
        for name in CONFIG_FILES:
            if (path / name).is_file():
                copy_into(path / name, folder, f"{FOLDER}/{name}")
        return copy_into(path / weights, folder, f"{FOLDER}/{weights}")

    return Opened("huggingface", net, str(values["arch"][0]), values, notes, {"class": type(net).__name__},
                  write=write, model_file=f"{FOLDER}/{weights}",
                  num_classes=int(getattr(net.config, "num_labels", 0)) or None)


def load(folder: Path, card) -> nn.Module:
    return _model(folder / FOLDER)
