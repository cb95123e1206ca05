"""Image-folder datasets: dogs vs wolves, insects, chest X-ray (Kaggle layout), or any folder.

Two layouts are understood:

* class folders: ``root/<class>/*.jpg`` -> a deterministic, stratified, seeded train/val/test split;
* split folders: ``root/{train,val,test}/<class>/*`` (``valid``/``validation`` also count as val;
  a missing val split is carved from train).

Classes come from the folder names (sorted). Every file goes through :func:`core.datasets.images.to_array`
(EXIF orientation, any PIL mode, shorter side resized, centre crop). Unreadable and non-image files
are skipped and reported in ``dataset.extras["skipped"]``. Decoded arrays are cached under
``<data>/cache/`` keyed by the file list, sizes and modification times.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from core import config
from core.errors import DatasetError, ImageError
from core.datasets.images import IMAGE_SUFFIXES, open_image, to_array
from core.io import atomic_write_with
from core.datasets.base import ArrayDataset, DatasetInfo
from core.datasets.source import Source, Status

log = logging.getLogger(__name__)

SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "test": "test", "testing": "test"}
FRACTIONS = (0.7, 0.15, 0.15)  # train / val / test when the folder has no split folders
SPLIT_SEED = 0
CACHE_VERSION = 1
ProgressFn = Callable[[int, int], None]


def _readable(folder: Path) -> bool:
    try:
        next(iter(folder.iterdir()), None)
        return True
    except OSError:
        return False


def _link_problem(d: Path, root: Path, siblings: list[Path]) -> str | None:
    """Why a folder that is a symbolic link is left out: it leads out of the dataset folder, or back into it (the
    dataset folder itself, or another class's folder: its images would be counted twice, under a wrong class)."""
    if not d.is_symlink():
        return None
    target, top = d.resolve(), root.resolve()
    if target == top or top.is_relative_to(target):
        return "a link back to the dataset folder (a loop): left out"
    if not target.is_relative_to(top):
        return "a link to a folder outside the dataset folder: left out"
    for other in siblings:  # the real folders beside it
        o = other.resolve()
        if not other.is_symlink() and (target == o or target.is_relative_to(o) or o.is_relative_to(target)):
            return f"a link to {other.name}'s folder (its images would count twice): left out"
    return None


def _class_dirs(folder: Path, unreadable: list[tuple[str, str]] | None = None, root: Path | None = None) -> list[Path]:
    """Sub-folders of ``folder``; those that cannot be read, or that are links out of the dataset folder
    (``root``) or back into it, are left out and added to ``unreadable`` (a silent class with 0 images, or copies
    of another class's images, otherwise)."""
    dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    why = {d: "class folder cannot be read (permissions?): left out" for d in dirs if not _readable(d)}
    why.update({d: w for d in dirs if d not in why and (w := _link_problem(d, root or folder, dirs))})
    if unreadable is not None:
        unreadable.extend((_shown(d), w) for d, w in why.items())
    return [d for d in dirs if d not in why]


def _files(folder: Path, root: Path, skipped: list[tuple[str, str]]) -> list[Path]:
    """The files under a class folder; a file that is a link to outside the dataset folder is left out, said."""
    top, out = root.resolve(), []
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.name.startswith("."):
            continue
        if p.is_symlink() and not p.resolve().is_relative_to(top):
            skipped.append((_shown(p), "a link to a file outside the dataset folder: left out"))
            continue
        out.append(p)
    return out


def scan(root: Path) -> tuple[str, dict[str, list[tuple[Path, str]]], list[str], list[tuple[str, str]]]:
    """Find the layout, and the (file, class) list of each split.

    Returns:
        (layout, {split: [(path, class_name)]}, classes, [(unreadable folder, reason)])
    """
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder")
    unreadable: list[tuple[str, str]] = []
    subdirs = _class_dirs(root, unreadable, root)
    split_dirs = {SPLIT_ALIASES[d.name.lower()]: d for d in subdirs if d.name.lower() in SPLIT_ALIASES}
    if split_dirs and len(split_dirs) == len(subdirs):
        per_split = {s: _class_dirs(d, unreadable, root) for s, d in split_dirs.items()}
        classes = sorted({c.name for dirs in per_split.values() for c in dirs})
        if not classes:
            raise DatasetError(f"{root} has split folders ({', '.join(split_dirs)}) but no class folders inside them")
        splits = {s: [(f, c.name) for c in dirs for f in _files(c, root, unreadable)] for s, dirs in per_split.items()}
        if "val" not in splits and "train" in splits:
            splits["train"], splits["val"] = _stratified(splits["train"], (0.85, 0.15, 0.0))[:2]
        return "split folders", splits, classes, unreadable
    if not subdirs:
        raise DatasetError(f"{root} has no class folders: put images in {root}/<class name>/ "
                           f"(or {root}/train/<class name>/ ...)")
    classes = [d.name for d in subdirs]
    items = [(f, d.name) for d in subdirs for f in _files(d, root, unreadable)]
    train, val, test = _stratified(items, FRACTIONS)
    return "class folders", {"train": train, "val": val, "test": test}, classes, unreadable


def _stratified(items: list[tuple[Path, str]], fractions: tuple[float, float, float]):
    """Deterministic stratified split: per class, a seeded shuffle, then the fractions (at least one
    image per split where the class has three or more)."""
    rng = np.random.default_rng(SPLIT_SEED)
    out: tuple[list, list, list] = ([], [], [])
    by_class: dict[str, list] = {}
    for it in items:
        by_class.setdefault(it[1], []).append(it)
    for cls in sorted(by_class):
        group = sorted(by_class[cls], key=lambda it: str(it[0]))
        order = rng.permutation(len(group))
        n = len(group)
        n_val = int(round(fractions[1] * n))
        n_test = int(round(fractions[2] * n))
        if n >= 3:
            n_val = max(n_val, 1) if fractions[1] else 0
            n_test = max(n_test, 1) if fractions[2] else 0
        cut_test, cut_val = n - n_test, n - n_test - n_val
        for rank, idx in enumerate(order):
            out[0 if rank < cut_val else 1 if rank < cut_test else 2].append(group[idx])
    return out


def _shown(text: str | Path) -> str:
    """A file name as text that any display can encode: bytes that are not UTF-8 (a name from another system)
    become ``\\xff`` escapes instead of lone surrogates that crash the page's table."""
    return os.fsencode(str(text)).decode("utf-8", "backslashreplace")


def _decode(files: list[tuple[Path, str]], classes: list[str], size: int, channels: int,
            progress: ProgressFn | None = None):
    images, labels, skipped, modes, sizes = [], [], [], Counter(), Counter()
    for k, (path, cls) in enumerate(files):
        if progress:
            progress(k, len(files))
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append((_shown(path), "not an image file (extension)"))
            continue
        try:
            img = open_image(path)
            modes[img.mode] += 1
            sizes[f"{img.size[0]}x{img.size[1]}"] += 1
            images.append(to_array(img, size, channels))
            labels.append(classes.index(cls))
        except ImageError as exc:
            skipped.append((_shown(path), _shown(exc)))
    if progress:
        progress(len(files), len(files))
    arr = np.stack(images) if images else np.zeros((0, size, size, channels), np.uint8)
    return arr, np.array(labels, dtype=np.int64), skipped, dict(modes), dict(sizes)


def guess_channels(files: list[tuple[Path, str]], sample: int = 20) -> int:
    """1 if the (first ``sample``) readable images are all grayscale, else 3."""
    seen = 0
    for path, _ in files:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        try:
            img = open_image(path)
        except ImageError:
            continue
        if img.mode not in ("L", "LA", "I", "I;16", "I;16B", "I;16L", "F", "1"):
            if img.mode == "P" or np.ptp(np.asarray(img.convert("RGB"), dtype=np.int16)[..., :3].astype(np.int16)
                                         - np.asarray(img.convert("L"), dtype=np.int16)[..., None]) > 8:
                return 3
        seen += 1
        if seen >= sample:
            break
    return 1 if seen else 3


@dataclass(frozen=True, kw_only=True)
class FolderSpec:
    """A dataset read from an image-folder tree, declared by keyword (as timm's ``PretrainedCfg``)."""

    name: str
    title: str
    #: the folder under the data folder; ``None``: the folder the user gives (``root=`` / ``--data-dir``)
    folder: str | None
    #: 1 (grey) or 3 (RGB); ``None``: RGB unless the user's images say otherwise
    channels: int | None = None
    default_size: int = 128
    source: str
    license: str
    description: str
    #: the expected class folders, in label order (empty: the class folders found)
    classes: tuple[str, ...] = ()


class FolderSource(Source):
    """A dataset read from an image-folder tree."""

    sizes = (224, 128, 64)

    def __init__(self, spec: FolderSpec) -> None:
        self.spec = spec
        self.folder = spec.folder
        self.channels = spec.channels
        self.default_size = spec.default_size
        self.info = DatasetInfo(name=spec.name, title=spec.title, classes=spec.classes, channels=spec.channels or 3,
                                image_size=spec.default_size, source=spec.source, license=spec.license,
                                description=spec.description)

    def path(self, root: Path) -> Path:
        """The dataset's folder: ``<data>/<folder>`` by default; a root given explicitly may be the folder itself
        (e.g. ``--data-dir ../shared/data/samples/dogs_vs_wolves``)."""
        default = root.resolve() == config.data_dir().resolve()
        if self.folder is None:
            if default:
                raise DatasetError("the 'folder' dataset needs the path of your image folder (root=... / --data-dir)")
            return root
        if default or (root / self.folder).is_dir():
            return root / self.folder
        return root

    def status(self, root: Path, size: int | None = None) -> Status:
        try:
            p = self.path(root)
            _, splits, classes, _ = scan(p)
        except DatasetError as exc:
            return Status("needs files", f"{exc}. Get it from: {self.info.source}")
        n = sum(len(v) for v in splits.values())
        if n == 0:
            return Status("needs files", f"{p} has class folders but no files. Get it from: {self.info.source}")
        return Status("ready", f"{p}: {n} files in {len(classes)} classes")

    def load(self, split: str, root: Path, size: int | None, progress: ProgressFn | None = None) -> ArrayDataset:
        if split not in ("train", "val", "test"):
            raise ValueError(f"folder datasets have splits train, val, test; not {split!r}")
        folder = self.path(root)
        layout, splits, classes, unreadable = scan(folder)
        files = splits.get(split, [])
        size = size or self.default_size
        channels = self.channels or guess_channels([f for v in splits.values() for f in v])
        key = hashlib.sha256(json.dumps([CACHE_VERSION, str(folder.resolve()), split, size, channels, classes,
                                         [(str(p), p.stat().st_size, p.stat().st_mtime) for p, _ in files]]).encode())
        cache = config.data_dir() / "cache" / f"{self.info.name}_{split}_{size}px_{channels}ch_{key.hexdigest()[:16]}.npz"
        data = None
        if cache.is_file():
            try:
                with np.load(cache, allow_pickle=False) as z:
                    data = (z["images"], z["labels"], json.loads(str(z["meta"])))
            except Exception as exc:
                log.warning("ignoring unreadable cache %s (%s)", cache, exc)
        if data is None:
            images, labels, skipped, modes, sizes = _decode(files, classes, size, channels, progress)
            meta = {"skipped": skipped, "modes": modes, "sizes": sizes}
            try:
                atomic_write_with(cache, lambda fh: np.savez_compressed(fh, images=images, labels=labels,
                                                                        meta=np.array(json.dumps(meta))))
            except OSError as exc:  # a read-only data folder still works, just without the cache
                log.warning("cannot write cache %s (%s)", cache, exc)
            data = (images, labels, meta)
        images, labels, meta = data
        meta = {**meta, "skipped": list(meta["skipped"]) + unreadable}
        if len(classes) < 2:
            raise DatasetError(f"{folder} has one class folder ({classes[0] if classes else 'none'}): a classifier needs "
                               "at least two classes, one folder of images each")
        if files and len(images) == 0:
            first = meta["skipped"][0] if meta["skipped"] else ("?", "?")
            raise DatasetError(f"{folder}: no readable images among the {len(files)} files of the {split} split "
                               f"(e.g. {first[0]}: {first[1]})")
        info = replace(self.info, classes=tuple(classes), channels=channels, image_size=size)
        return ArrayDataset(info=info, split=split, images=images, labels=labels,
                            extras={"path": str(folder), "layout": layout, "skipped": meta["skipped"],
                                    "modes": meta["modes"], "sizes": meta["sizes"],
                                    "split_seed": SPLIT_SEED if layout == "class folders" else None,
                                    "split_fractions": FRACTIONS if layout == "class folders" else None})


def images_in(root: Path) -> tuple[list[Path], list[str | None]]:
    """Every image file under ``root`` with its class: the class folders' name (in any split folder), or ``None``
    for a folder of images without class folders. Links out of the folder are left out; sorted by path."""
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder")
    try:
        _, splits, _, _ = scan(root)
        pairs = sorted({(p, c) for items in splits.values() for p, c in items}, key=lambda pc: str(pc[0]))
        found: list[tuple[Path, str | None]] = [(p, c) for p, c in pairs]
    except DatasetError:
        found = [(p, None) for p in _files(root, root, [])]
    found = [(p, c) for p, c in found if p.suffix.lower() in IMAGE_SUFFIXES]
    if not found:
        raise DatasetError(f"{root} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return [p for p, _ in found], [c for _, c in found]
