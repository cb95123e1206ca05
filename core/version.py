"""The project's version, from its package metadata: the installed distribution's when it is installed, else the
``[project]`` table of ``pyproject.toml`` beside the package (the project runs from its folder)."""
from __future__ import annotations

import tomllib
from functools import cache
from importlib import metadata

from core.config import ROOT

DISTRIBUTION = "xai-dashboard"


@cache
def project_version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        pass
    try:
        with open(ROOT / "pyproject.toml", "rb") as fh:
            return str(tomllib.load(fh)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


#: the libraries whose versions decide a map
LIBRARIES = ("torch", "torchvision", "captum", "grad-cam", "lime", "shap", "numpy", "scikit-image")


def library_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Installed versions of :data:`LIBRARIES` (and ``extra``), for provenance records."""
    out = {}
    for name in (*LIBRARIES, *extra):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
