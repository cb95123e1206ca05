"""Progress text for staged work on the pages (a quality evaluation): the current step and its time left."""
from __future__ import annotations

from core.eta import UnitClock, format_left


def stage_text(clock: UnitClock, stage: int, stages: int, label: str, done: int, total: int) -> str:
    """``"Deletion (step 2 of 5): 12/40 · about 3 min left in this step"``: the time left is the current step's alone,
    from its measured rate (steps differ in cost: a whole-run estimate from the fraction done was off by minutes)."""
    left = format_left(clock.left(done, total))
    return f"{label} (step {stage + 1} of {stages}): {done}/{total}" + (f" · {left} in this step" if left else "")
