"""Honest time left: from the measured cost of the units done since the first one finished (the first unit carries
the start-up: imports, allocation, a cold cache), shown in minutes once it is more than a minute.

    clock = UnitClock()
    clock.left(done, total)   # None until a second report after the first unit, then seconds
    format_left(250.0)        # "about 5 min left"

A run of steps that differ in cost (a quality run: maps, then each metric; a map job: one step per method) is timed
by :class:`StageClock`: the current step from its own measured rate, the later steps from what each was expected to
take (measured rates times the work each step declares, see :mod:`core.explainers.timing`). :func:`seconds_per_item`
is the measurement those rates start from: a warm-up call apart, a pass over a batch at the batch the real work
reaches.
"""
from __future__ import annotations

import math
import statistics
import time
from typing import Callable, Sequence


class UnitClock:
    """Seconds left from the rate measured since the first unit was done.

    ``settle``: units that must be done after the first before there is an answer (any by default; more where one
    unit is too short to time well, e.g. a training step).
    """

    def __init__(self, settle: float = 0) -> None:
        self.settle = max(0.0, float(settle))
        self._first: tuple[float, float] | None = None  # (time, done) at the first report with a unit done

    def reset(self) -> None:
        self._first = None

    def rate(self, done: float, now: float | None = None) -> float | None:
        """Seconds per unit since the first unit was done; ``None`` before ``settle`` more units."""
        now = time.monotonic() if now is None else now
        if done <= 0:
            return None
        if self._first is None:
            self._first = (now, done)
            return None
        t0, d0 = self._first
        if done <= d0 or done - d0 < self.settle or now <= t0:
            return None
        return (now - t0) / (done - d0)

    def left(self, done: float, total: float, now: float | None = None) -> float | None:
        if not total:
            return None
        rate = self.rate(done, now)
        return None if rate is None else max(0.0, rate * (total - done))


class StageClock:
    """Seconds left in a run of steps: the current step's from its own measured rate (a :class:`UnitClock`, restarted
    with each step) or, until that rate is known, from what the step was expected to take less the time it has run;
    each later step's from its expectation. ``None`` while a later step has no expectation (``None``).

        clock = StageClock([4.0, 30.0, 0.5])     # seconds each step is expected to take
        clock.left(0, 3, 10)                     # step 0, 3 of its 10 units done: whole run
        clock.step_left(0, 3, 10)                # the current step alone (its measured rate only)
    """

    def __init__(self, expected: Sequence[float | None] = ()) -> None:
        self.expected: list[float | None] = list(expected)
        self._clock = UnitClock()
        self._stage: object = None
        self._since = 0.0

    def expect(self, expected: Sequence[float | None]) -> None:
        self.expected = list(expected)

    @property
    def step(self) -> UnitClock:
        """The current step's clock."""
        return self._clock

    def _enter(self, stage: object, now: float) -> None:
        if stage != self._stage:
            self._stage, self._since = stage, now
            self._clock.reset()

    def step_left(self, stage: int, done: float, total: float, now: float | None = None, key: object = None) -> float | None:
        """The current step's time left from its measured rate (``key`` tells two steps with one index apart)."""
        now = time.monotonic() if now is None else now
        self._enter((stage, key), now)
        return self._clock.left(done, total, now)

    def left(self, stage: int, done: float, total: float, now: float | None = None, key: object = None) -> float | None:
        """The whole run's time left, at ``done`` of ``total`` units of step ``stage``."""
        now = time.monotonic() if now is None else now
        current = self.step_left(stage, done, total, now, key)
        if current is None:
            expected = self.expected[stage] if 0 <= stage < len(self.expected) else None
            if expected is None:
                return None
            current = max(0.0, expected - (now - self._since))
        later = self.expected[stage + 1:]
        if any(e is None for e in later):
            return None
        return current + sum(later)  # type: ignore[arg-type]


def seconds_per_item(run: Callable[[int], object], most: int, aim: float = 0.15, budget: float = 1.0,
                     linear: float = 1.6, repeats: int = 2, clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds per item of ``run(n)`` (a pass over ``n`` images, say) at the batch the real work reaches: after a
    warm-up call of 2, the batch is doubled from 2 while a call takes less than ``aim`` seconds or doubling it cost
    less than ``linear`` times as much (the call's cost, not the items', still sets its time), up to ``most`` items
    or ``budget`` seconds in all; then the median of ``repeats`` more calls at that batch (none: the last call's)."""
    run(min(2, most))  # warm-up: allocation, a cold cache, an export
    b, last = min(2, most), None
    spent = 0.0
    while True:
        t0 = clock()
        run(b)
        t = clock() - t0
        spent += t
        if b >= most or spent >= budget or (t >= aim and last is not None and t >= linear * last):
            break
        b, last = min(most, 2 * b), t
    if repeats < 1:
        return t / b
    times = []
    for _ in range(repeats):
        t0 = clock()
        run(b)
        times.append(clock() - t0)
    return statistics.median(times) / b


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
