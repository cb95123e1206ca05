"""The foundation every package stands on: one parameter dialect (``core.params``), one job runner
(``core.jobs``), and the project's version from its metadata."""
from __future__ import annotations

import threading
import time
import tomllib

import pytest

from core.errors import Cancelled, ParameterError, UnknownNameError, XaiError
from core.jobs import JobRunner
from core.params import Param, defaults, resolve
from tests.helpers import ROOT


def test_resolve_fills_defaults_checks_values_and_names_what_it_takes():
    params = (Param("n", "int", 4, min=1, max=8), Param("how", "choice", "a", choices=("a", "b")),
              Param("on", "bool", False))
    assert defaults(params) == {"n": 4, "how": "a", "on": False}
    assert resolve("thing", params, {"n": "6", "on": "yes"}) == {"n": 6, "how": "a", "on": True}
    with pytest.raises(ParameterError, match=r"thing has no parameter 'x'; it takes: n, how, on"):
        resolve("thing", params, {"x": 1})
    with pytest.raises(ParameterError, match=r"'n' must be in \[1, 8\], got 9"):
        resolve("thing", params, {"n": 9})
    with pytest.raises(ParameterError, match="'how' must be one of a, b"):
        resolve("thing", params, {"how": "c"})


def test_every_metric_option_and_method_parameter_is_the_same_declared_type():
    from core.explainers import get_method, list_methods
    from core.quality import get_metric, list_metrics

    declared = [p for m in list_methods() for p in get_method(m).params]
    declared += [p for m in list_metrics() for p in get_metric(m).params]
    assert declared and all(type(p) is Param for p in declared)
    assert any(p.name == "replacement" for m in list_metrics() for p in get_metric(m).params)


def _wait(job, states=("done", "failed", "cancelled"), limit=10.0):
    deadline = time.monotonic() + limit
    while job.state not in states:
        assert time.monotonic() < deadline, f"job stayed {job.state}"
        time.sleep(0.01)
    return job


def test_a_job_reports_progress_time_left_and_its_result():
    runner = JobRunner(workers=1)
    step = threading.Event()

    def work(progress, cancel):
        for i in range(1, 5):
            progress(i, 4, f"unit {i}")
            if i == 2:
                step.wait(5)
            time.sleep(0.02)
        return "answer"

    job = runner.submit(work, kind="test", label="four units", meta={"model": "m"})
    _wait(job, states=("running",))
    deadline = time.monotonic() + 5
    while job.done < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.done == 2 and job.total == 4 and job.message == "unit 2" and job.seconds_left is not None
    assert job.seconds_left >= 0 and 0 < job.fraction < 1
    step.set()
    _wait(job)
    assert job.state == "done" and job.result == "answer" and job.seconds_left is None
    assert runner.get(job.id) is job and runner.find(kind="test", model="m") == [job]
    assert job.view()["state"] == "done" and "result" not in job.view()


def test_cancel_stops_a_running_job_and_a_queued_one_never_starts():
    runner = JobRunner(workers=1)
    started = threading.Event()

    def long(progress, cancel):
        started.set()
        while not cancel.cancelled:
            time.sleep(0.01)
        raise Cancelled("stopped at a check")

    ran = []
    first = runner.submit(long)
    queued = runner.submit(lambda progress, cancel: ran.append(1))
    assert started.wait(5)
    assert queued.state == "queued"
    runner.cancel(queued.id)
    assert queued.state == "cancelled"
    runner.cancel(first.id)
    _wait(first)
    assert first.state == "cancelled" and first.error == "stopped at a check"
    time.sleep(0.05)
    assert ran == [] and queued.state == "cancelled"


def test_failures_say_what_happened_and_bugs_name_a_log_id(caplog):
    runner = JobRunner(workers=2)

    def refused(progress, cancel):
        raise XaiError("a precise reason")

    def bug(progress, cancel):
        raise KeyError("internal detail")

    a, b = runner.submit(refused), runner.submit(bug)
    _wait(a), _wait(b)
    assert a.state == "failed" and a.error == "a precise reason"
    assert b.state == "failed" and "log id" in b.error and "internal detail" not in b.error
    assert "internal detail" in caplog.text  # the traceback goes to the log
    with pytest.raises(UnknownNameError, match="Unknown job"):
        runner.get("nope")


def test_the_runner_forgets_the_oldest_finished_jobs_beyond_its_bound():
    runner = JobRunner(workers=1, keep=3)
    jobs = [runner.submit(lambda progress, cancel, i=i: i) for i in range(6)]
    for j in jobs:
        _wait(j)
    runner.submit(lambda progress, cancel: None)
    known = [j for j in jobs if runner.find() and j in runner.find()]
    assert len(runner.find()) <= 4 and jobs[0] not in known and jobs[-1] in known


def test_the_version_is_the_package_metadata():
    from core.version import project_version

    with open(ROOT / "pyproject.toml", "rb") as fh:
        assert project_version() == tomllib.load(fh)["project"]["version"]


def test_time_left_comes_from_the_measured_rate_after_the_first_unit_and_is_shown_in_minutes():
    """The first unit carries the start-up (it took 10 s here, the others 1 s each): the estimate ignores it, so after
    three units of ten the answer is 7 s, not the 30 s a whole-run average gives; then minutes past one minute."""
    from core.eta import UnitClock, format_duration, format_left

    clock = UnitClock()
    assert clock.left(0, 10, now=0.0) is None
    assert clock.left(1, 10, now=10.0) is None  # one unit: no rate yet
    assert clock.left(2, 10, now=11.0) == pytest.approx(8.0)
    assert clock.left(3, 10, now=12.0) == pytest.approx(7.0)
    clock.reset()
    assert clock.left(5, 10, now=20.0) is None
    assert format_left(None) == "" and format_left(float("nan")) == ""
    assert format_left(0.2) == "about 1 s left" and format_left(40) == "about 40 s left"
    assert format_left(61) == "about 2 min left" and format_left(250) == "about 5 min left"
    assert format_left(3700) == "about 1 h 2 min left" and format_duration(59.4) == "59 s"


def test_a_quality_stage_says_the_time_left_in_that_stage_from_its_own_rate():
    import time

    from core.eta import UnitClock
    from ui.progress import stage_text

    clock = UnitClock()
    assert stage_text(clock, 1, 5, "Deletion", 0, 40) == "Deletion (step 2 of 5): 0/40"
    clock.left(1, 40, now=time.monotonic() - 9.0)  # the first image of the step done 9 s ago
    text = stage_text(clock, 1, 5, "Deletion", 10, 40)  # nine more since: 1 s each, 30 to go
    assert text in ("Deletion (step 2 of 5): 10/40 · about 30 s left in this step",
                    "Deletion (step 2 of 5): 10/40 · about 31 s left in this step"), text
