"""Settings remembered across sessions and restarts: a small JSON file beside the data, written atomically.

Today it holds the folder the user chose for each dataset (``dataset_roots``), so a folder typed once in
the UI is known to every browser session and after a restart.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from . import config
from .io import atomic_write_json

FILE_NAME = "settings.json"
_lock = threading.Lock()


def settings_path() -> Path:
    return config.data_dir() / FILE_NAME


def load() -> dict[str, Any]:
    """The saved settings; ``{}`` when there are none or the file is unreadable (it is only a convenience)."""
    try:
        data = json.loads(settings_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def dataset_roots() -> dict[str, str]:
    roots = load().get("dataset_roots", {})
    return {str(k): str(v) for k, v in roots.items()} if isinstance(roots, dict) else {}


def remember_dataset_root(name: str, folder: str | Path) -> None:
    """Record ``folder`` as where ``name``'s files are (read-modify-write under a lock, published atomically)."""
    with _lock:
        data = load()
        roots = data.get("dataset_roots") if isinstance(data.get("dataset_roots"), dict) else {}
        data["dataset_roots"] = {**roots, name: str(Path(folder).resolve())}
        atomic_write_json(settings_path(), data)
