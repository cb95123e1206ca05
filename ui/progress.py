"""A progress bar for engine calls: model images done, and the time left, per stage."""
from __future__ import annotations

import time

import streamlit as st


class EngineProgress:
    """``st.progress`` driven by the engine's ``progress(done, total)`` callback, over several stages
    (one engine call each), with the time left estimated from the current stage's rate."""

    def __init__(self, stages: int, text: str = "Computing attributions…") -> None:
        self.bar = st.progress(0.0, text=text)
        self.stages, self.stage, self.label = max(1, stages), 0, ""
        self.t0 = time.monotonic()
        self._last = 0.0

    def start(self, stage: int, label: str) -> None:
        self.stage, self.label, self.t0 = stage, label, time.monotonic()
        self.bar.progress(min(1.0, stage / self.stages), text=f"{label}…")

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < 0.2:  # at most five redraws a second
            return
        self._last = now
        elapsed = now - self.t0
        left = elapsed / done * (total - done) if done else float("nan")
        eta = f" · about {left:.0f} s left" if left == left and elapsed > 1.0 else ""
        self.bar.progress(min(1.0, (self.stage + done / max(total, 1)) / self.stages),
                          text=f"{self.label}: {done:,} / {total:,} model images{eta}")

    def empty(self) -> None:
        self.bar.empty()


class StageProgress:
    """``st.progress`` driven by a staged run's ``progress(stage, stages, label, done, total)`` (a quality
    evaluation), with the time left from the fraction done so far."""

    def __init__(self, text: str = "Starting…") -> None:
        self.bar = st.progress(0.0, text=text)
        self.t0 = time.monotonic()

    def __call__(self, stage: int, stages: int, label: str, done: int, total: int) -> None:
        frac = min(1.0, (stage + done / max(total, 1)) / max(stages, 1))
        elapsed = time.monotonic() - self.t0
        eta = f" · about {elapsed / frac * (1 - frac):.0f} s left" if frac > 0.02 and elapsed > 2 else ""
        self.bar.progress(frac, text=f"{label}: {done}/{total}{eta}")

    def empty(self) -> None:
        self.bar.empty()
