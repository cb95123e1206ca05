"""A model uploaded through the app or the API, staged where an import can read it: inside the models folder's hidden
``.uploads/`` (never outside the project's folders), bounded in bytes, and removed when the import is done.

One file (a state dict, TorchScript, ONNX, safetensors) is kept under its own name. A ``.zip`` holding a timm or
Hugging Face folder (``config.json`` beside its weights) is unpacked with every member checked first: no absolute path,
no ``..``, no link, at most :data:`MAX_MEMBERS` files, and its unpacked size within the same byte limit (a zip bomb is
refused by what it declares and, while unpacking, by what it writes).
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator

from core.errors import CheckpointError
from core.io import shared_mode

UPLOADS = ".uploads"


class UploadTooLarge(CheckpointError):
    """An upload (or what its archive unpacks to) over the byte limit."""

#: the largest model file (or unpacked folder) an upload may be, in MiB (``XAI_MAX_MODEL_MIB``)
DEFAULT_MAX_MIB = 2048
MAX_MEMBERS = 64


def max_model_bytes() -> int:
    return int(float(os.environ.get("XAI_MAX_MODEL_MIB", DEFAULT_MAX_MIB)) * 2**20)


def _size(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def _safe_name(name: str) -> str:
    base = PurePosixPath(str(name).replace("\\", "/")).name
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", base).strip("._")[:120]
    return cleaned or "model"


def _unzip(archive: Path, into: Path, limit: int) -> Path:
    try:
        z = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise CheckpointError(f"{archive.name} is not a readable zip archive ({exc})") from exc
    with z:
        members = [m for m in z.infolist() if not m.is_dir()]
        if len(members) > MAX_MEMBERS:
            raise CheckpointError(f"{archive.name} holds {len(members)} files; a model folder has a few (at most "
                                  f"{MAX_MEMBERS})")
        declared = sum(m.file_size for m in members)
        if declared > limit:
            raise UploadTooLarge(f"{archive.name} unpacks to {_size(declared)}; the limit is {_size(limit)} "
                                 "(XAI_MAX_MODEL_MIB)")
        for m in members:
            p = PurePosixPath(m.filename)
            if p.is_absolute() or ".." in p.parts or m.filename.startswith(("/", "\\")):
                raise CheckpointError(f"{archive.name} has a member outside its folder ({m.filename!r}): refused")
            if stat.S_ISLNK(m.external_attr >> 16):
                raise CheckpointError(f"{archive.name} has a link ({m.filename!r}): refused")
        written = 0
        for m in members:
            target = into / PurePosixPath(m.filename)
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(m) as src, open(target, "wb") as dst:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    written += len(chunk)
                    if written > limit:
                        raise UploadTooLarge(f"{archive.name} unpacks to more than its declared size and over "
                                             f"{_size(limit)}: refused")
                    dst.write(chunk)
    configs = sorted(into.rglob("config.json"), key=lambda p: len(p.parts))
    if not configs:
        raise CheckpointError(f"{archive.name} holds no config.json: a zipped model is a timm or Hugging Face folder")
    folder = configs[0].parent
    if folder == into:  # the folder's files at the zip's root: the folder is named after the zip (its default id)
        folder = into.rename(into.parent / _safe_name(archive.stem))
    return folder


@contextlib.contextmanager
def staged(name: str, data: bytes | Iterable[bytes], models_dir: str | os.PathLike | None = None,
           limit: int | None = None) -> Iterator[Path]:
    """The uploaded model as a path (a file, or the folder a ``.zip`` held), inside ``<models>/.uploads/``; removed
    after. Raises :class:`CheckpointError` for an upload over ``limit`` bytes (default ``XAI_MAX_MODEL_MIB``), an
    empty one, or an unsafe archive."""
    from core import config

    limit = max_model_bytes() if limit is None else limit
    root = (Path(models_dir) if models_dir else config.models_dir()) / UPLOADS
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
    try:
        folder.chmod(shared_mode(directory=True))
        path = folder / _safe_name(name)
        written = 0
        with open(path, "wb") as fh:
            for chunk in ([data] if isinstance(data, (bytes, bytearray)) else data):
                written += len(chunk)
                if written > limit:
                    raise UploadTooLarge(f"the upload is over {_size(limit)}, the limit for a model "
                                         "(XAI_MAX_MODEL_MIB); import a larger file by its path on the server instead")
                fh.write(chunk)
        if written == 0:
            raise CheckpointError(f"{path.name} is empty")
        if path.suffix.lower() == ".zip":
            unpacked = folder / "unpacked"
            unpacked.mkdir()
            path = _unzip(path, unpacked, limit)  # ``unpacked/`` renamed after the zip when its files are at the root
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def clean_stale(models_dir: str | os.PathLike | None = None) -> None:
    """Remove staged uploads whose process is gone (a kill mid-import)."""
    from core import config
    from core.modelling.checkpoints import _alive

    root = (Path(models_dir) if models_dir else config.models_dir()) / UPLOADS
    if not root.is_dir():
        return
    for p in root.iterdir():
        m = re.match(r"(\d+)-", p.name)
        if m and not _alive(int(m.group(1))):
            shutil.rmtree(p, ignore_errors=True)
