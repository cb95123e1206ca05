"""Honest time left: from the measured cost of the units done since the first one finished (the first unit carries
the start-up: imports, allocation, a cold cache), shown in minutes once it is more than a minute.

    clock = UnitClock()
    clock.left(done, total)   # None until a second report after the first unit, then seconds
    format_left(250.0)        # "about 5 min left"
"""
from __future__ import annotations

import math
import time


class UnitClock:
    """Seconds left from the rate measured since the first unit was done."""

    def __init__(self) -> None:
        self._first: tuple[float, float] | None = None  # (time, done) at the first report with a unit done

    def reset(self) -> None:
        self._first = None

    def left(self, done: float, total: float, now: float | None = None) -> float | None:
        now = time.monotonic() if now is None else now
        if done <= 0 or not total:
            return None
        if self._first is None:
            self._first = (now, done)
            return None
        t0, d0 = self._first
        if done <= d0 or now <= t0:
            return None
        return max(0.0, (now - t0) / (done - d0) * (total - done))


def format_duration(seconds: float) -> str:
    """``"40 s"``, ``"5 min"``, ``"1 h 20 min"`` (minutes rounded up: an estimate that errs long, not short)."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def format_left(seconds: float | None) -> str:
    """``"about 40 s left"``, ``"about 5 min left"``, ``"about 1 h 20 min left"``; ``""`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    return f"about {format_duration(seconds)} left"
