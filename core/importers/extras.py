"""The optional packages some formats need (``requirements-import.txt``): a format whose package is missing is refused
with the command that installs it, never with an ImportError."""
from __future__ import annotations

import importlib
from types import ModuleType

from core.errors import CheckpointError

#: package -> the pinned requirement (the versions the tests ran with), as in ``requirements-import.txt``
PINS = {"onnx2torch": "onnx2torch==1.5.15", "timm": "timm==1.0.31", "transformers": "transformers==5.25.0",
        "safetensors": "safetensors==0.8.0", "onnx": "onnx==1.23.1", "onnxruntime": "onnxruntime==1.30.0"}


def missing(package: str, what: str) -> CheckpointError:
    return CheckpointError(f"importing {what} needs the optional package {package}, which is not installed here: run "
                           f"`pip install -r requirements-import.txt` (or `pip install {PINS.get(package, package)}`) "
                           "in the project's environment, then import again")


def require(module: str, what: str) -> ModuleType:
    """``import module``, or a :class:`CheckpointError` that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise missing(module.split(".")[0], what) from exc
