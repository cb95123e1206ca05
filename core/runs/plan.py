"""What a whole-split run computes, fixed before it starts: :class:`RunPlan`.

A plan names the model (its folder and the weights' SHA-256), the dataset split, the image ids (all, the first
``limit``, or a seeded ``sample``), the methods with their resolved parameters, the seed rule and the targets. It is
JSON, so the Ray actors rebuild everything from it (never from a pickled model), and its digest tells a resumed run
that the parts already on disk belong to it.

The images are cut into parts by position in the sorted id list (``part_size`` ids each), the same way on every
engine, so which images share a batch, and therefore every map, does not depend on the engine or its workers.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from core.errors import ParameterError, RunRefused
from core.eta import format_duration as format_seconds  # noqa: F401  (the runs' name for it)

#: the format of the stored run (parts and manifest); readers refuse a newer one
SCHEMA_VERSION = 1
#: images per stored part (and per Ray task): small enough for steady progress, large enough to amortise a task
PART_SIZE = 256
#: a method is "slow" when one image costs it at least this many model images (LIME, both SHAPs, Occlusion at
#: their defaults; Score-CAM on a wide layer) ...
SLOW_COST = 100
#: ... and a slow method is refused over more images than this unless a seeded sample is asked for
SLOW_LIMIT = 200
#: the seed rule, recorded in the manifest: a stochastic method explains image ``id`` with this seed
SEED_RULE = "seed + image id (the method's own seed parameter, else the run's seed)"

Targets = Literal["predicted", "label"]


@dataclass(frozen=True, kw_only=True)
class RunPlan:
    """Everything that determines a run's maps (the engine, its workers and the batch size do not)."""

    model_path: str
    model_id: str
    weights_sha256: str
    dataset: str
    split: str
    size: int
    data_root: str | None
    ids: tuple[int, ...]
    selection: dict[str, Any]
    methods: dict[str, dict[str, Any]]
    seed: int = 0
    targets: Targets = "predicted"
    part_size: int = PART_SIZE
    classes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ids"], d["classes"] = list(self.ids), list(self.classes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunPlan":
        return cls(**{**d, "ids": tuple(int(i) for i in d["ids"]), "classes": tuple(d.get("classes", ()))})

    @property
    def ids_sha256(self) -> str:
        return ids_digest(np.asarray(self.ids, dtype=np.int64))

    @property
    def digest(self) -> str:
        """SHA-256 of what determines the maps: equal digests, interchangeable parts."""
        d = self.to_dict()
        d["ids"] = self.ids_sha256
        d.pop("data_root")  # the same files may be read from another folder (another node, a moved folder)
        d.pop("model_path")  # the weights digest names the model
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()

    def parts(self) -> list[tuple[int, ...]]:
        """The ids of each part, in order."""
        return [self.ids[k: k + self.part_size] for k in range(0, len(self.ids), self.part_size)]

    def image_seed(self, method: str, image_id: int) -> int | None:
        """The seed ``method`` explains ``image_id`` with (``None``: the method takes no seed)."""
        base = self.methods[method].get("seed")
        return None if base is None else int(base) + int(image_id)


def ids_digest(ids: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(ids, dtype="<i8").tobytes()).hexdigest()


def select_ids(n: int, *, limit: int | None = None, sample: int | None = None, seed: int = 0) -> tuple[np.ndarray, dict]:
    """The image ids of a split of ``n`` images to explain, sorted, and how they were chosen.

    ``limit``: the first ``limit`` ids. ``sample``: ``sample`` ids drawn without replacement with ``seed`` (from the
    first ``limit`` when both are given).
    """
    for name, v in (("limit", limit), ("sample", sample)):
        if v is not None and (not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1):
            raise ParameterError(f"{name} must be a whole number of images of at least 1, got {v!r}")
    pool = np.arange(min(n, limit) if limit else n, dtype=np.int64)
    if sample is not None and sample < len(pool):
        pool = np.sort(np.random.default_rng(seed).choice(pool, size=sample, replace=False))
        return pool, {"rule": "sample", "sample": int(sample), "limit": limit, "seed": int(seed), "of": int(n)}
    return pool, {"rule": "first" if limit else "all", "limit": limit, "of": int(n)}


def check_slow(methods: dict[str, dict[str, Any]], costs: dict[str, int], seconds: dict[str, float], n_images: int,
               sampled: bool) -> None:
    """Refuse slow methods over more than :data:`SLOW_LIMIT` images unless the images are a seeded sample."""
    slow = [m for m in methods if costs[m] >= SLOW_COST]
    if sampled or n_images <= SLOW_LIMIT or not slow:
        return
    what = "; ".join(f"{m}: {costs[m]:,} model images per image, about {format_seconds(seconds[m] * n_images)} "
                     f"for {n_images:,} images" for m in slow)
    raise RunRefused(f"{', '.join(slow)} {'is' if len(slow) == 1 else 'are'} too slow for a whole split of "
                   f"{n_images:,} images ({what}). Explain a seeded random sample instead: --sample N (e.g. "
                   f"--sample {SLOW_LIMIT}), or the first N images: --limit N (at most {SLOW_LIMIT}).")


