"""Rank correlation of maps, shared by the stability and sanity metrics."""
from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr


def rank_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of two batches of maps, per image (NaN where one map is constant)."""
    out = np.full(len(a), np.nan)
    for i in range(len(a)):
        x, y = a[i].ravel(), b[i].ravel()
        if np.ptp(x) > 0 and np.ptp(y) > 0:
            out[i] = spearmanr(x, y).statistic
    return out
