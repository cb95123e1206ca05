"""``shapes``: the built-in synthetic dataset. Needs no network, is deterministic for a seed.

Each RGB image shows one geometric shape (circle, square, triangle or cross) at a random position,
scale, rotation and colour, on a textured noisy background with soft distractor blobs. Every image
comes with its ground-truth object mask, so explanation quality can be scored against it.
"""
from __future__ import annotations

import colorsys
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.io import atomic_write_with
from core.datasets.base import ArrayDataset, DatasetInfo

log = logging.getLogger(__name__)

CLASSES = ("circle", "square", "triangle", "cross")
#: Split sizes and the seed each split is generated from (distinct seeds: no image is shared).
SPLITS = {"train": (4000, 1001), "val": (500, 2002), "test": (1000, 3003)}
#: Bump when the generator changes, so stale caches are not reused.
GENERATOR_VERSION = 1

INFO = DatasetInfo(
    name="shapes",
    title="Shapes (built-in synthetic)",
    classes=CLASSES,
    channels=3,
    image_size=64,
    source="Generated locally by core/datasets/shapes.py (no download)",
    license="Public domain (generated)",
    description="One geometric shape per image on a textured, noisy background with distractor blobs; "
    "ground-truth object masks included.",
)


def _shape_mask(kind: int, yy: np.ndarray, xx: np.ndarray, cx: float, cy: float, r: float, theta: float) -> np.ndarray:
    dx, dy = xx - cx, yy - cy
    c, s = np.cos(theta), np.sin(theta)
    u, v = c * dx + s * dy, -s * dx + c * dy  # coordinates in the shape's rotated frame
    if kind == 0:  # circle
        return dx * dx + dy * dy <= r * r
    if kind == 1:  # square, half-side 0.8 r
        h = 0.8 * r
        return (np.abs(u) <= h) & (np.abs(v) <= h)
    if kind == 2:  # equilateral triangle with circumradius r
        inside = np.ones_like(u, dtype=bool)
        for k in range(3):
            a = theta + np.pi / 2 + k * 2 * np.pi / 3  # outward normal of one edge
            inside &= (np.cos(a + np.pi) * dx + np.sin(a + np.pi) * dy) <= r / 2
        return inside
    # cross: two bars, arm length r, half-width 0.3 r
    w = 0.3 * r
    return ((np.abs(u) <= r) & (np.abs(v) <= w)) | ((np.abs(u) <= w) & (np.abs(v) <= r))


def _random_colour(rng: np.random.Generator, sat: tuple[float, float], val: tuple[float, float]) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(*sat), rng.uniform(*val)), dtype=np.float32)


def generate(n: int, seed: int, size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Generate ``n`` images.

    Returns:
        images uint8 (n, size, size, 3), labels int64 (n,), masks bool (n, size, size).
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(CLASSES)).astype(np.int64)

    # Backgrounds, vectorised: a muted base colour + smooth low-frequency texture + stripes + pixel noise.
    gen = torch.Generator().manual_seed(seed)
    low = torch.randn(n, 3, 6, 6, generator=gen)
    texture = F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False).numpy()
    texture = texture.transpose(0, 2, 3, 1) * 0.08
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5

    images = np.empty((n, size, size, 3), dtype=np.float32)
    masks = np.empty((n, size, size), dtype=bool)
    for i in range(n):
        base = _random_colour(rng, (0.0, 0.35), (0.3, 0.75))
        angle, freq, phase = rng.uniform(0, np.pi), rng.uniform(0.1, 0.4), rng.uniform(0, 2 * np.pi)
        stripes = 0.04 * np.sin(freq * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)
        img = base + texture[i] + stripes[..., None]
        # Distractors: soft Gaussian blobs (no sharp edges, so they never look like a class shape).
        for _ in range(rng.integers(1, 4)):
            bx, by = rng.uniform(0, size, 2)
            sx, sy = rng.uniform(0.04, 0.12, 2) * size
            blob = np.exp(-(((xx - bx) / sx) ** 2 + ((yy - by) / sy) ** 2) / 2)[..., None]
            img = img * (1 - 0.7 * blob) + 0.7 * blob * _random_colour(rng, (0.3, 0.9), (0.3, 1.0))
        r = rng.uniform(0.14, 0.28) * size
        cx, cy = rng.uniform(r + 1, size - r - 1, 2)
        theta = rng.uniform(0, 2 * np.pi)
        m = _shape_mask(int(labels[i]), yy, xx, cx, cy, r, theta)
        img[m] = _random_colour(rng, (0.55, 1.0), (0.55, 1.0)) + rng.normal(0, 0.02, (int(m.sum()), 3))
        images[i] = img
        masks[i] = m
    images += rng.normal(0, 0.03, images.shape).astype(np.float32)
    return (np.clip(images, 0, 1) * 255 + 0.5).astype(np.uint8), labels, masks


def cache_path(root: Path, split: str, size: int) -> Path:
    n, seed = SPLITS[split]
    return root / "shapes" / f"shapes_v{GENERATOR_VERSION}_{split}_{n}_{size}px_seed{seed}.npz"


def _cached(path: Path, keys: tuple[str, ...], make) -> tuple[np.ndarray, ...]:
    """The arrays ``keys`` of the cache file ``path``, or ``make()``'s, written there first (a damaged cache is
    regenerated, never trusted). Shared by ``shapes`` and ``shapes_spurious``."""
    if path.exists():
        try:
            with np.load(path) as z:
                return tuple(z[k] for k in keys)
        except Exception as exc:
            log.warning("ignoring unreadable cache %s (%s); regenerating", path, exc)
    data = make()
    atomic_write_with(path, lambda fh: np.savez_compressed(fh, **dict(zip(keys, data))))
    return data


def load(split: str, root: Path, size: int = 64) -> ArrayDataset:
    """Load a split from the cache under ``root/shapes/``, generating (and caching) it on first use."""
    if split not in SPLITS:
        raise ValueError(f"shapes has splits {list(SPLITS)}, not {split!r}")
    data = _cached(cache_path(root, split, size), ("images", "labels", "masks"), lambda: generate(*SPLITS[split], size))
    info = INFO if size == INFO.image_size else replace(INFO, image_size=size)
    return ArrayDataset(info=info, split=split, images=data[0], labels=data[1], masks=data[2])


# -- shapes_spurious: the built-in Clever Hans ------------------------------------------------------------------
#: marker colour per class (red, green, blue, yellow): in train and val the marker names the class 95% of the time
MARKER_COLOURS = np.array([[0.95, 0.1, 0.1], [0.1, 0.85, 0.1], [0.15, 0.3, 1.0], [1.0, 0.9, 0.05]], dtype=np.float32)
MARKER_AGREEMENT = 0.95
SPURIOUS_SPLITS = {"train": (4000, 4004), "val": (500, 5005), "test": (1000, 6006)}
SPURIOUS_VERSION = 1

SPURIOUS_INFO = DatasetInfo(
    name="shapes_spurious",
    title="Shapes with a spurious marker (built-in Clever Hans)",
    classes=CLASSES,
    channels=3,
    image_size=64,
    source="Generated locally by core/datasets/shapes.py (no download)",
    license="Public domain (generated)",
    description="Like Shapes, plus a small coloured square in the top-left corner. In train and val its colour "
    f"names the class {MARKER_AGREEMENT:.0%} of the time; in test it is random. A model that learns the marker "
    "loses accuracy on test, and its maps point at the corner: the wolves-on-snow story, built in. Object masks "
    "and marker masks included.",
)


def add_markers(images: np.ndarray, labels: np.ndarray, agreement: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paint the marker on uint8 images (a copy): colour of the label with probability ``agreement``, else of
    another class chosen at random. Returns images, marker masks (bool, N x H x W) and the colour index used."""
    rng = np.random.default_rng(seed)
    n, size = len(images), images.shape[1]
    k = len(MARKER_COLOURS)
    other = (labels + rng.integers(1, k, n)) % k
    colour = np.where(rng.random(n) < agreement, labels, other)
    side = max(3, round(size * 0.125))
    pad = max(1, round(size * 0.03))
    masks = np.zeros((n, size, size), dtype=bool)
    masks[:, pad:pad + side, pad:pad + side] = True
    out = images.copy()
    out[masks] = np.repeat((MARKER_COLOURS[colour] * 255 + 0.5).astype(np.uint8), side * side, axis=0)
    return out, masks, colour


def spurious_cache_path(root: Path, split: str, size: int) -> Path:
    n, seed = SPURIOUS_SPLITS[split]
    return root / "shapes" / f"shapes_spurious_v{GENERATOR_VERSION}.{SPURIOUS_VERSION}_{split}_{n}_{size}px_seed{seed}.npz"


def load_spurious(split: str, root: Path, size: int = 64) -> ArrayDataset:
    """``shapes_spurious``: shapes images with the marker; ``extras["marker_masks"]`` and ``extras["marker_class"]``."""
    if split not in SPURIOUS_SPLITS:
        raise ValueError(f"shapes_spurious has splits {list(SPURIOUS_SPLITS)}, not {split!r}")

    def make() -> tuple[np.ndarray, ...]:
        n, seed = SPURIOUS_SPLITS[split]
        images, labels, masks = generate(n, seed, size)
        if split == "test":  # the colour is drawn at random, unrelated to the class
            random_class = np.random.default_rng(seed + 1).integers(0, len(CLASSES), n)
            marked, marker_masks, colour = add_markers(images, random_class, 1.0, seed)
        else:
            marked, marker_masks, colour = add_markers(images, labels, MARKER_AGREEMENT, seed)
        return marked, labels, masks & ~marker_masks, marker_masks, colour

    data = _cached(spurious_cache_path(root, split, size),
                   ("images", "labels", "masks", "marker_masks", "marker_class"), make)
    info = SPURIOUS_INFO if size == SPURIOUS_INFO.image_size else replace(SPURIOUS_INFO, image_size=size)
    return ArrayDataset(info=info, split=split, images=data[0], labels=data[1], masks=data[2],
                        extras={"marker_masks": data[3], "marker_class": data[4]})
