"""What every dataset source offers: metadata, a readiness status, loading, and (where possible) download."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

from core.datasets.base import ArrayDataset, DatasetInfo

State = Literal["ready", "needs download", "needs files", "photos only"]
#: progress(bytes_done, bytes_total or None)
DownloadProgress = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class Status:
    state: State
    detail: str  # where the files are, or exactly what to do

    @property
    def ready(self) -> bool:
        return self.state == "ready"


class Source:
    """Base class of a registered dataset."""

    info: DatasetInfo
    #: image sides this source can provide (the first is the default for a download)
    sizes: tuple[int, ...] = ()
    downloadable: bool = False
    #: no labelled images: its models take photos a user uploads (the ImageNet models)
    photos_only: bool = False

    def status(self, root: Path, size: int | None = None) -> Status:
        raise NotImplementedError

    def available_sizes(self, root: Path) -> tuple[int, ...]:
        """The sizes that can be loaded from ``root`` now (sources that resize on load: all of them)."""
        return self.sizes

    def load(self, split: str, root: Path, size: int | None) -> ArrayDataset:
        raise NotImplementedError

    def download(self, root: Path, size: int | None = None, progress: DownloadProgress | None = None) -> Path:
        raise NotImplementedError(f"{self.info.title} cannot be downloaded automatically: {self.info.source}")
