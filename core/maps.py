"""Numeric helpers on attribution maps, shared by the explainers and the drawing code."""
from __future__ import annotations

import numpy as np


def robust_scale(attribution: np.ndarray, outlier_perc: float = 1.0) -> float:
    """Robust maximum of ``|attribution|``: its (100 - outlier_perc) percentile, or the max if that is 0."""
    mag = np.abs(attribution)
    s = float(np.percentile(mag, 100 - outlier_perc)) if outlier_perc > 0 else float(mag.max())
    return s if s > 1e-12 else float(mag.max())
