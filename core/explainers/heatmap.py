"""From an attribution map to what is drawn: its robust scale and the [0, 1] heat map (shared by the engine and the
drawing code)."""
from __future__ import annotations

import numpy as np


def robust_scale(attribution: np.ndarray, outlier_perc: float = 1.0) -> float:
    """Robust maximum of ``|attribution|``: its (100 - outlier_perc) percentile, or the max if that is 0."""
    mag = np.abs(attribution)
    s = float(np.percentile(mag, 100 - outlier_perc)) if outlier_perc > 0 else float(mag.max())
    return s if s > 1e-12 else float(mag.max())


def to_heatmap(attribution: np.ndarray, outlier_perc: float = 1.0) -> tuple[np.ndarray, bool]:
    """Scale ``|attribution|`` to [0, 1] by its (100 - outlier_perc) percentile; ``(zeros, True)`` if flat: no value
    stands out by more than float32 rounding (a spread within a millionth of the scale, e.g. a uniform attention
    rollout whose sums differ in the last bits)."""
    mag = np.abs(attribution)
    scale = robust_scale(attribution, outlier_perc)
    if scale <= 1e-12 or float(attribution.max() - attribution.min()) <= 1e-6 * scale:
        return np.zeros_like(mag, dtype=np.float32), True
    return np.clip(mag / scale, 0.0, 1.0).astype(np.float32), False
