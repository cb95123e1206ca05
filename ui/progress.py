"""Progress of staged work on the pages (a quality evaluation, a map request method by method): the current step
and its time left, as a job reports it."""
from __future__ import annotations

from core.eta import UnitClock, format_left


def stage_text(clock: UnitClock, stage: int, stages: int, label: str, done: int, total: int) -> str:
    """``"Deletion (step 2 of 5): 12/40 · about 3 min left in this step"``: the time left is the current step's alone,
    from its measured rate (steps differ in cost: a whole-run estimate from the fraction done was off by minutes)."""
    left = format_left(clock.left(done, total))
    return f"{label} (step {stage + 1} of {stages}): {done}/{total}" + (f" · {left} in this step" if left else "")


#: a job's progress units per step (a step's share of the bar)
UNITS = 1000


def staged(progress):
    """A staged run's ``(stage, stages, label, done, total)`` reports as a job's ``progress(done, total, message)``:
    each step an equal share of the bar, the message :func:`stage_text` (its clock restarted with each step)."""
    clock, current = UnitClock(), [None]

    def report(stage: int, stages: int, label: str, done: int, total: int) -> None:
        if current[0] != (stage, label):
            clock.reset()
            current[0] = (stage, label)
        progress(stage * UNITS + int(UNITS * done / max(total, 1)), stages * UNITS,
                 stage_text(clock, stage, stages, label, done, total))

    return report
