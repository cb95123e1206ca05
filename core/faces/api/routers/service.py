"""``/health`` and ``/version``."""
from __future__ import annotations

import platform
from importlib import metadata

from fastapi import APIRouter

from core import config
from core.faces.api.limits import GUARDED
from core.faces.api.schemas import Health, Version
from core.version import project_version

router = APIRouter(tags=["service"])


@router.get("/health", response_model=Health)
def health() -> Health:
    return Health()


@router.get("/version", response_model=Version, dependencies=GUARDED)
def version() -> Version:
    from core.present.report import library_versions

    libs = library_versions()
    for name in ("fastapi", "uvicorn", "streamlit"):
        try:
            libs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            libs[name] = "not installed"
    return Version(project=project_version(), python=platform.python_version(), libraries=libs,
                   device=str(config.pick_device()))
