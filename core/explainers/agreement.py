"""Comparing methods: rank agreement between maps, and export of a comparison grid's raw maps."""
from __future__ import annotations

import io
import json
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.stats import spearmanr


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps' magnitudes (importance ranks); NaN if either is constant."""
    x, y = np.abs(np.ravel(a)), np.abs(np.ravel(b))
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def agreement_matrix(maps: Mapping[str, Sequence[np.ndarray]]) -> tuple[list[str], np.ndarray]:
    """Mean Spearman correlation between every pair of methods over the same images.

    Args:
        maps: method -> one attribution map per image (same image order for every method).
    Returns:
        (methods, matrix) with ``matrix[i, j]`` the mean over images (NaN-skipping) and 1 on the diagonal.
    """
    methods = list(maps)
    n = len(methods)
    m = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            rs = [spearman(a, b) for a, b in zip(maps[methods[i]], maps[methods[j]])]
            rs = [r for r in rs if r == r]
            m[i, j] = m[j, i] = float(np.mean(rs)) if rs else float("nan")
    return methods, m


def maps_npz(maps: Mapping[tuple[int, str], np.ndarray], images: Mapping[int, np.ndarray], meta: dict[str, Any]) -> bytes:
    """An ``.npz`` with ``map_<index>_<method>`` (signed maps), ``image_<index>`` and ``meta`` (JSON)."""
    arrays = {f"map_{i}_{m}": np.asarray(a, dtype=np.float32) for (i, m), a in maps.items()}
    arrays.update({f"image_{i}": np.asarray(img) for i, img in images.items()})
    arrays["meta"] = np.array(json.dumps(meta))
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()
