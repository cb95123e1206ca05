"""Importing a model: :func:`inspect_source` reads any supported file into a :class:`~core.importers.draft.Draft`
(the model and its card, every value with where it came from), :func:`save_imported` writes it to
``models/<id>/`` atomically, :func:`import_model` does both. Every face (the CLI's ``import-model``, the app's Import
page, the API's ``POST /models``) calls these."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from core.errors import CheckpointError
from core.importers import files, formats, settings, store
from core.importers.draft import Draft, assemble
from core.importers.extras import require
from core.modelling.cards import file_sha256
from core.modelling.checkpoints import MODEL_FORMATS, publish_model

for _name in formats.FORMATS:  # load_model reads imported models through these
    MODEL_FORMATS.register(_name)(formats.load)


def _digest(path: Path) -> str:
    if path.is_file():
        return file_sha256(path)
    h = hashlib.sha256()  # a folder: its files' digests, by name
    for p in sorted(path.iterdir()):
        if p.is_file():
            h.update(f"{p.name}:{file_sha256(p)}\n".encode())
    return h.hexdigest()


def inspect_source(source: str | os.PathLike, **given: Any) -> Draft:
    """Read a model file or folder and draft its card; ``given``: the import settings a user set
    (:data:`core.importers.settings.SETTINGS`; a value left out is read from the file, detected or defaulted).

    Raises:
        CheckpointError: not a readable model, a format whose optional package is missing (with the command that
            installs it), a pickled whole model (refused without unpickling anything), or a card that does not fit
            the model (with the numbers).
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    values = settings.given(given)
    fmt = formats.FORMATS[formats.BY_KIND[files.kind(path)]]
    if fmt.extra:
        require(fmt.extra, f"a {fmt.title} model")
    opened = fmt.open(path, values)
    return assemble(opened, values, path.name, _digest(path))


def save_imported(draft: Draft, models_dir: str | os.PathLike | None = None, replace: bool = False) -> Path:
    """Write the drafted model to ``<models folder>/<id>/`` (its file in its format, and its card), atomically; an
    existing model of that id is kept unless ``replace``."""
    from core.modelling.pretrained import imagenet_arch

    if imagenet_arch(draft.card.id):
        raise CheckpointError(f"model id {draft.card.id!r} is the name of one of torchvision's ImageNet models: give "
                              "another")
    from core.importers.uploads import clean_stale

    clean_stale(models_dir)
    if not replace and store.model_exists(draft.card.id, models_dir):
        raise CheckpointError(f"a model {draft.card.id!r} exists already: give another id, or replace it")
    return publish_model(draft.card, draft.write, models_dir)


def import_model(source: str | os.PathLike, models_dir: str | os.PathLike | None = None, replace: bool = False,
                 **given: Any) -> tuple[Path, Draft]:
    """:func:`inspect_source` then :func:`save_imported`; returns the model's folder and the draft."""
    draft = inspect_source(source, **given)
    return save_imported(draft, models_dir, replace), draft
