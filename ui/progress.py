"""Progress of staged work on the pages (a quality evaluation, a map request method by method): the current step
and the time left, as a job reports it: the whole run's when every step still to come has an expected time (see
:class:`core.eta.StageClock`), else the current step's alone."""
from __future__ import annotations

from typing import Sequence

from core.eta import StageClock, UnitClock, format_left


def stage_text(clock: UnitClock, stage: int, stages: int, label: str, done: int, total: int,
               run_left: float | None = None) -> str:
    """``"Deletion (step 2 of 5): 12/40 · about 3 min left"`` (the whole run, ``run_left``, when it is known), else
    ``"... · about 1 min left in this step"``: the current step's alone, from its measured rate (steps differ in
    cost: a whole-run estimate from the fraction done was off by minutes)."""
    head = f"{label} (step {stage + 1} of {stages}): {done}/{total}"
    if run_left is not None:
        return f"{head} · {format_left(run_left)}"
    left = format_left(clock.left(done, total))
    return head + (f" · {left} in this step" if left else "")


#: a job's progress units per step (a step's share of the bar)
UNITS = 1000


def staged(progress, expected: Sequence[float | None] = ()):
    """A staged run's ``(stage, stages, label, done, total)`` reports as a job's ``progress(done, total, message)``:
    each step an equal share of the bar, the message :func:`stage_text`. ``expected``: the seconds each step is
    expected to take (``None`` where unknown); the work may also give them later, through the returned function's
    ``plan`` attribute (:func:`core.quality.evaluate` does)."""
    clock = StageClock(expected)

    def report(stage: int, stages: int, label: str, done: int, total: int) -> None:
        run_left = clock.left(stage, done, total, key=label)  # restarts the step's clock with each step
        progress(stage * UNITS + int(UNITS * done / max(total, 1)), stages * UNITS,
                 stage_text(clock.step, stage, stages, label, done, total, run_left))

    report.plan = clock.expect  # type: ignore[attr-defined]
    return report
