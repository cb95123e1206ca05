"""Where a dataset's files are read from: one rule for every face (the pages, the CLI, the API, a model's
evaluation). The folder given (a session's choice, ``--data-dir``), else the folder remembered in the settings file,
else the default data folder, else a folder that a model of the dataset was trained from (its card records it)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from core import settings
from core.datasets import Status, dataset_status


def recorded_roots(name: str, card: Any = None) -> list[str]:
    """Folders that trained models of ``name`` were read from (``card``'s alone when given)."""
    from core.modelling.checkpoints import list_models

    cards = [card] if card is not None else [c for _, c in list_models(dataset=name)]
    out = []
    for c in cards:
        recorded = (c.dataset_options or {}).get("path")
        if recorded:
            p = Path(recorded)
            out.append(str(p.parent if p.suffix == ".npz" else p))
    return out


def locate(name: str, given: str | Path | None = None, card: Any = None) -> tuple[str | None, Status]:
    """The folder to read ``name`` from (``None``: the default data folder) and the dataset's status there. A folder
    given or remembered is answered even when the files are not there (its status says what is missing)."""
    chosen = str(given) if given else settings.dataset_roots().get(name)
    found = dataset_status(name, root=chosen)
    if chosen or found.ready:
        return chosen, found
    for candidate in recorded_roots(name, card):
        status = dataset_status(name, root=candidate)
        if status.ready:
            return candidate, status
    return None, found
