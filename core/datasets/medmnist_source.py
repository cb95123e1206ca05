"""MedMNIST (PathMNIST, PneumoniaMNIST) from the official ``.npz`` files.

Metadata (class names, channels, split sizes, URLs, MD5s, licence) comes from the ``medmnist``
package's ``INFO``. The files are read with numpy rather than medmnist's dataset classes, which
assert the full official sample count and so reject reduced files (and test fixtures).
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from core.errors import DatasetError
from core.datasets.base import ArrayDataset, DatasetInfo
from core.datasets.download import download_file, md5sum
from core.datasets.registry import register_source
from core.datasets.source import DownloadProgress, Source, Status

log = logging.getLogger(__name__)

SIZES = (64, 28, 128, 224)  # 64 first: the default download (8x8 CAM cells, better accuracy than 28)
_md5_cache: dict[tuple[str, int, float], str] = {}


def _medmnist_info(flag: str) -> dict:
    """medmnist's metadata of ``flag``, from its ``medmnist/info.py`` alone: the package's ``__init__`` imports its
    dataset classes and evaluator (scikit-learn, about 2 s at every start), and the registry needs only ``INFO``.
    The module is loaded under its own name, so a later ``import medmnist`` reuses it."""
    import importlib.util
    import sys

    info = sys.modules.get("medmnist.info")
    if info is None:
        spec = importlib.util.find_spec("medmnist")
        if spec is None or not spec.submodule_search_locations:
            raise DatasetError("the medmnist package is missing: pip install -r requirements.txt")
        path = Path(list(spec.submodule_search_locations)[0]) / "info.py"
        spec = importlib.util.spec_from_file_location("medmnist.info", path)
        info = importlib.util.module_from_spec(spec)
        sys.modules["medmnist.info"] = info
        spec.loader.exec_module(info)
    return info.INFO[flag]


class MedMNISTSource(Source):
    downloadable = True
    sizes = SIZES

    def __init__(self, flag: str, title: str) -> None:
        self.flag = flag
        meta = _medmnist_info(flag)
        self.meta = meta
        n = meta["n_samples"]
        self.info = DatasetInfo(
            name=flag, title=title, classes=tuple(meta["label"][str(i)] for i in range(len(meta["label"]))),
            channels=int(meta["n_channels"]), image_size=64,
            source=f"MedMNIST v2 (Yang et al., Scientific Data 2023), {meta['url'].split('?')[0].rsplit('/', 1)[0]}",
            license=meta.get("license", "CC BY 4.0"),
            description=f"{meta['task']}; official splits train {n['train']:,} / val {n['val']:,} / test {n['test']:,}; "
                        f"sizes {', '.join(map(str, sorted(SIZES)))} px",
        )

    # -- files -------------------------------------------------------------------------------------------
    def filename(self, size: int) -> str:
        return f"{self.flag}.npz" if size == 28 else f"{self.flag}_{size}.npz"

    def url_md5(self, size: int) -> tuple[str, str]:
        suffix = "" if size == 28 else f"_{size}"
        return self.meta[f"url{suffix}"], self.meta[f"MD5{suffix}"]

    def candidates(self, root: Path, size: int) -> list[Path]:
        """Where a file may be: ``<root>/medmnist/`` (downloads) or ``<root>/`` itself (a user's folder)."""
        return [root / "medmnist" / self.filename(size), root / self.filename(size)]

    def find(self, root: Path, size: int | None) -> tuple[Path, int] | None:
        for s in ([size] if size else SIZES):
            if s not in SIZES:
                raise DatasetError(f"{self.info.title} comes in {', '.join(map(str, sorted(SIZES)))} px, not {s}")
            for p in self.candidates(root, s):
                if p.is_file():
                    return p, s
        return None

    def available_sizes(self, root: Path) -> tuple[int, ...]:
        """Only the sizes whose file is on disk (each size is its own download)."""
        return tuple(s for s in SIZES if any(p.is_file() for p in self.candidates(root, s)))

    def status(self, root: Path, size: int | None = None) -> Status:
        found = self.find(root, size)
        if found:
            return Status("ready", f"{found[0]} ({found[1]} px)")
        s = size or SIZES[0]
        url, _ = self.url_md5(s)
        return Status("needs download", f"{self.filename(s)} is not in {root / 'medmnist'}: download it "
                                        f"(`python -m core download {self.flag} --size {s}`) or put the file there "
                                        f"from {url}")

    def download(self, root: Path, size: int | None = None, progress: DownloadProgress | None = None) -> Path:
        s = size or SIZES[0]
        url, md5 = self.url_md5(s)
        return download_file(url, root / "medmnist" / self.filename(s), md5, progress)

    # -- loading -----------------------------------------------------------------------------------------
    def checksum_warning(self, path: Path, size: int) -> str | None:
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime)
        if key not in _md5_cache:
            _md5_cache[key] = md5sum(path)
        expected = self.url_md5(size)[1]
        if _md5_cache[key] != expected:
            return (f"{path.name}: MD5 {_md5_cache[key]} differs from the official {expected} "
                    "(a modified or reduced copy?); loading it anyway")
        return None

    def load(self, split: str, root: Path, size: int | None) -> ArrayDataset:
        if split not in ("train", "val", "test"):
            raise ValueError(f"{self.flag} has splits train, val, test; not {split!r}")
        found = self.find(root, size)
        if found is None:
            raise DatasetError(f"{self.info.title}: {self.status(root, size).detail}")
        path, s = found
        warning = self.checksum_warning(path, s)
        if warning:
            log.warning(warning)
        try:
            with np.load(path) as z:
                keys = set(z.files)
                need = [f"{split}_images", f"{split}_labels"]
                missing = [k for k in need if k not in keys]
                if missing:
                    raise DatasetError(f"{path.name} lacks {', '.join(missing)} (it has: {', '.join(sorted(keys))})")
                images, labels = z[need[0]], z[need[1]]
        except DatasetError:
            raise
        except Exception as exc:
            raise DatasetError(f"{path} is not a readable .npz file: {exc}") from exc
        images = self._check(path, split, images, labels, s)
        info = self.info if s == self.info.image_size else replace(self.info, image_size=s)
        return ArrayDataset(info=info, split=split, images=images, labels=labels.reshape(-1).astype(np.int64),
                            extras={"path": str(path), "warnings": [warning] if warning else [],
                                    "official_size": self.meta["n_samples"][split]})

    def _check(self, path: Path, split: str, images: np.ndarray, labels: np.ndarray, size: int) -> np.ndarray:
        c = self.info.channels
        want = f"(N, {size}, {size})" if c == 1 else f"(N, {size}, {size}, 3)"
        if images.dtype != np.uint8:
            raise DatasetError(f"{path.name}: {split}_images are {images.dtype}, expected uint8")
        ok = images.ndim == 3 if c == 1 else (images.ndim == 4 and images.shape[-1] == 3)
        if c == 1 and images.ndim == 4 and images.shape[-1] == 1:
            ok, images = True, images[..., 0]
        if not ok or images.shape[1:3] != (size, size):
            raise DatasetError(f"{path.name}: {split}_images have shape {images.shape}, expected {want}")
        if labels.ndim not in (1, 2) or (labels.ndim == 2 and labels.shape[1] != 1):
            raise DatasetError(f"{path.name}: {split}_labels have shape {labels.shape}, expected (N, 1)")
        if len(labels) != len(images):
            raise DatasetError(f"{path.name}: {len(images)} {split} images but {len(labels)} labels")
        if labels.dtype.kind not in "iub":
            if labels.dtype.kind != "f":
                raise DatasetError(f"{path.name}: {split}_labels are {labels.dtype} values, expected integer class "
                                   f"indices 0..{len(self.info.classes) - 1}")
            if not np.isfinite(labels).all() or not np.array_equal(labels, np.round(labels)):
                raise DatasetError(f"{path.name}: {split}_labels hold non-integral values (NaN, inf or fractions): "
                                   "labels must be whole class indices")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(self.info.classes)):
            raise DatasetError(f"{path.name}: {split} labels range {labels.min()}..{labels.max()}, "
                               f"expected 0..{len(self.info.classes) - 1}")
        return images[..., None] if images.ndim == 3 else images


register_source(MedMNISTSource("pathmnist", "PathMNIST (colon pathology)"))
register_source(MedMNISTSource("pneumoniamnist", "PneumoniaMNIST (chest X-ray)"))
