"""The settings of an import, declared once: the CLI's flags, the API's form fields and the app's form are built from
:data:`SETTINGS`, and every face parses a value with :meth:`Setting.parse`, so they take the same values with the
same messages. A setting left empty is found in the file, or detected, or defaulted, and the card says which."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from core.errors import CheckpointError

Kind = Literal["text", "int", "names", "numbers", "choice"]


@dataclass(frozen=True)
class Setting:
    name: str
    kind: Kind
    label: str
    help: str
    choices: tuple[str, ...] = ()
    min: int | None = None
    max: int | None = None
    #: the command line's flag (default: ``--`` and the name with dashes)
    flag: str = ""

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def parse(self, value: Any) -> Any:
        """A typed value from what a face received (text from a flag or a form field, or a value already typed);
        ``None`` or empty text: not given. Raises :class:`CheckpointError` naming the setting."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        try:
            if self.kind == "text":
                return str(value).strip()
            if self.kind == "int":
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                number = int(str(value).strip()) if isinstance(value, str) else int(value)
                if (self.min is not None and number < self.min) or (self.max is not None and number > self.max):
                    raise CheckpointError(f"{self.label.lower()} must be in {self.min}..{self.max}, got {number}")
                return number
            if self.kind == "choice":
                text = str(value).strip().lower()
                if text not in self.choices:
                    raise CheckpointError(f"{self.label.lower()} must be one of {', '.join(self.choices)}, got {value!r}")
                return text
            if self.kind == "names":
                return parse_names(value)
            if self.kind == "numbers":
                items = value if isinstance(value, (list, tuple)) else str(value).replace(";", ",").split(",")
                numbers = [float(v) for v in items if str(v).strip()]
                if not numbers or not all(math.isfinite(v) for v in numbers):
                    raise ValueError
                return numbers
        except (TypeError, ValueError):
            what = {"int": "a whole number", "numbers": "numbers separated by commas (one per channel)",
                    "text": "text"}.get(self.kind, self.kind)
            raise CheckpointError(f"{self.label.lower()} must be {what}, got {value!r}") from None
        raise CheckpointError(f"unknown setting kind {self.kind!r}")


def parse_names(value: Any) -> list[str]:
    """Class names from a list, a JSON list (or an object of index -> name, as Hugging Face's ``id2label``), one name
    a line, or comma-separated text."""
    if isinstance(value, (list, tuple)):
        names = [str(v).strip() for v in value]
    else:
        text = str(value).strip()
        names = None
        if text[:1] in "[{":
            try:
                got = json.loads(text)
            except ValueError as exc:
                raise CheckpointError(f"class names look like JSON but are not valid JSON ({exc})") from None
            if isinstance(got, dict):
                try:
                    names = [str(got[k]) for k in sorted(got, key=lambda k: int(k))]
                except ValueError:
                    raise CheckpointError("a JSON object of class names needs index keys (\"0\", \"1\", …)") from None
            elif isinstance(got, list):
                names = [str(v) for v in got]
            else:
                raise CheckpointError("class names in JSON must be a list or an object of index -> name")
        if names is None:
            names = text.splitlines() if "\n" in text else text.split(",")
        names = [n.strip() for n in names]
    names = [n for n in names if n]
    if len(names) < 2:
        raise CheckpointError(f"give at least two class names, got {names}")
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise CheckpointError(f"class names must differ; {', '.join(twice)} appear more than once")
    return names


SETTINGS: tuple[Setting, ...] = (
    Setting("model_id", "text", "Model id", "the model's name here, its folder under the models folder (default: from "
            "the file's name)", flag="--id"),
    Setting("arch", "text", "Architecture", "for a state dict: an architecture this project builds (detected from the "
            "tensors where that is unambiguous), or timm:NAME for a timm model"),
    Setting("classes", "names", "Classes", "class names in the order of the model's outputs: comma-separated, one a "
            "line, or JSON (default: from the file where it has them)"),
    Setting("input_size", "int", "Input size", "the side, in pixels, of the square images the model takes", min=8,
            max=1024),
    Setting("channels", "choice", "Channels", "1 (grayscale) or 3 (colour) input channels (default: from the file, or "
            "found by running it)", choices=("1", "3")),
    Setting("mean", "numbers", "Mean", "per-channel mean subtracted from the pixels, in the model's channel order and "
            "in the pixel range given (e.g. 0.485,0.456,0.406, or 104,117,123 with pixel range 255)"),
    Setting("std", "numbers", "Std", "per-channel standard deviation the pixels are divided by, in the same order and "
            "range (1,1,1 for none)"),
    Setting("channel_order", "choice", "Channel order", "rgb, or bgr for models trained on BGR images (Caffe, OpenCV, "
            "many Keras exports)", choices=("rgb", "bgr")),
    Setting("pixel_range", "choice", "Pixel range", "1: pixels in [0, 1]; 255: pixels in [0, 255] (mean and std are "
            "given in that range)", choices=("1", "255")),
    Setting("resize_size", "int", "Resize to", "the shorter side is resized to this before the centre crop to the input "
            "size (0: straight to the input size)", min=0, max=2048),
    Setting("output", "choice", "Output", "what the model returns: logits, or probabilities (a final softmax; found "
            "from the file or its outputs where possible)", choices=("logits", "probabilities")),
    Setting("target_layer", "text", "CAM layer", "the layer CAM methods weight (default: detected, the last "
            "convolutional block or a transformer's last block)"),
)
BY_NAME = {s.name: s for s in SETTINGS}


def given(values: dict[str, Any]) -> dict[str, Any]:
    """Every setting parsed from ``values`` (unknown names refused); those not given are left out."""
    unknown = sorted(set(values) - set(BY_NAME))
    if unknown:
        raise CheckpointError(f"unknown import setting {', '.join(unknown)}; the settings are {', '.join(BY_NAME)}")
    out = {}
    for name, value in values.items():
        parsed = BY_NAME[name].parse(value)
        if parsed is not None:
            out[name] = int(parsed) if name in ("pixel_range", "channels") else parsed
    return out
