"""Settings remembered across sessions and restarts: a small JSON file beside the data, written atomically.

It holds the folder the user chose for each dataset (``dataset_roots``), so a folder typed once in the UI is
known to every browser session and after a restart, and the ImageNet weights files users gave
(``imagenet_weights``).
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from core import config
from core.io import atomic_write_json

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


def remember(section: str, key: str, value: str) -> None:
    """Set ``settings[section][key] = value`` (read-modify-write under a lock, published atomically)."""
    with _lock:
        data = load()
        got = data.get(section) if isinstance(data.get(section), dict) else {}
        data[section] = {**got, key: value}
        atomic_write_json(settings_path(), data)


def remember_dataset_root(name: str, folder: str | Path) -> None:
    """Record ``folder`` as where ``name``'s files are."""
    remember("dataset_roots", name, str(Path(folder).resolve()))
