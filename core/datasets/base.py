"""Dataset result type shared by every source."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from core.datasets.images import to_tensor


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset source, shown in the UI and recorded in model cards."""

    name: str
    title: str
    classes: tuple[str, ...]
    channels: int
    image_size: int
    source: str
    license: str
    description: str = ""
    splits: tuple[str, ...] = ("train", "val", "test")


@dataclass
class ArrayDataset(Dataset):
    """Images held in memory as uint8 arrays.

    Indexing gives ``(image, label)`` with ``image`` a float32 tensor of shape (C, H, W) in [0, 1]
    (model-specific normalisation is the first layer of every model, so datasets never guess it).

    Attributes:
        images: uint8 array (N, H, W, C).
        labels: int64 array (N,).
        masks: optional bool array (N, H, W): ground-truth object masks, where the source has them.
    """

    info: DatasetInfo
    split: str
    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None = None
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (N, H, W, C), got {self.images.dtype} {self.images.shape}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        self.labels = self.labels.astype(np.int64).reshape(-1)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.info.classes

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images in split {self.split!r}")
        return to_tensor(self.images[index]), int(self.labels[index])

    def image(self, index: int) -> np.ndarray:
        """The image as stored, uint8 (H, W, C), for display."""
        return self.images[index]

    def mask(self, index: int) -> np.ndarray | None:
        return None if self.masks is None else self.masks[index]

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` images drawn without replacement (seeded), as (n, C, H, W) float in [0, 1]."""
        return self.batch(np.sort(np.random.default_rng(seed).choice(len(self), size=min(n, len(self)), replace=False)))

    def batch(self, indices: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Images at ``indices`` as float (n, C, H, W) in [0, 1], converted from the uint8 store on demand."""
        idx = np.asarray(indices)
        return torch.from_numpy(self.images[idx]).permute(0, 3, 1, 2).float().div_(255.0)

    def channel_stats(self, limit: int = 20_000) -> tuple[list[float], list[float]]:
        """Per-channel mean and std in [0, 1] units, from up to ``limit`` images (seeded sample)."""
        idx = np.arange(len(self)) if len(self) <= limit else np.sort(np.random.default_rng(0).choice(len(self), limit, replace=False))
        a = self.images[idx].astype(np.float64) / 255.0
        mean = a.mean(axis=(0, 1, 2))
        std = np.maximum(a.std(axis=(0, 1, 2)), 1e-3)
        return [round(float(v), 6) for v in mean], [round(float(v), 6) for v in std]
