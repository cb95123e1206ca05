"""One job runner for long work, owned by the process that serves it: the API's jobs and the pages' background runs
(training today) go through the same :class:`JobRunner`, so progress, time left, cancel, the result and the error
are kept in one place and read the same way by every face.

A job is a function ``work(progress, cancel) -> result``: it reports ``progress(done, total, message="")`` in its
own units and stops with :class:`~core.errors.Cancelled` once ``cancel.cancelled`` is set. Anything the pages need
to draw while it runs (e.g. a training's curves so far) lives on ``job.detail``, an object the submitter owns.

    runner = JobRunner(workers=1)
    job = runner.submit(lambda progress, cancel: slow(progress, cancel), kind="explain", label="3 methods")
    job.view()        # {"id", "kind", "state", "done", "total", "seconds_left", "message", ...}
    runner.cancel(job.id)
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Literal

from core.cancel import CancelToken
from core.errors import Cancelled, UnknownNameError, XaiError

log = logging.getLogger("xai.jobs")

JobState = Literal["queued", "running", "done", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"done", "failed", "cancelled"})
#: ``progress(done, total, message="")``, in the job's own units
JobProgress = Callable[..., None]
Work = Callable[[JobProgress, CancelToken], Any]


class Job:
    """One unit of long work: its state, progress and outcome. Written by its worker thread, read by anyone."""

    def __init__(self, job_id: str, kind: str, label: str, meta: dict[str, Any], detail: Any = None) -> None:
        self.id, self.kind, self.label, self.meta, self.detail = job_id, kind, label, dict(meta), detail
        self.state: JobState = "queued"
        self.done, self.total, self.message = 0, 0, ""
        self.created, self.started, self.finished = time.time(), None, None
        self._first: tuple[float, int] | None = None  # (time, done) at the first unit finished: the rate's origin
        self.result: Any = None
        self.error: str | None = None
        self.token = CancelToken()

    def progress(self, done: int, total: int, message: str = "") -> None:
        self.done, self.total = int(done), int(total)
        if message:
            self.message = message
        if self._first is None and self.done > 0:
            self._first = (time.monotonic(), self.done)

    @property
    def running(self) -> bool:
        return self.state in ("queued", "running")

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    @property
    def seconds_left(self) -> float | None:
        """From the measured cost per unit since the first unit was done (``None`` until two reports apart)."""
        if self.state != "running" or self._first is None or not self.total:
            return None
        t0, d0 = self._first
        if self.done <= d0:
            return None
        rate = (time.monotonic() - t0) / (self.done - d0)
        return max(0.0, rate * (self.total - self.done))

    def cancel(self) -> None:
        self.token.cancel()
        if self.state == "queued":
            self._end("cancelled", error="cancelled before it started")

    def _end(self, state: JobState, result: Any = None, error: str | None = None) -> None:
        self.result, self.error, self.finished = result, error, time.time()
        self.state = state  # last: a reader that sees the final state sees the outcome too

    def run(self, work: Work) -> None:
        if self.token.cancelled:
            if self.state == "queued":
                self._end("cancelled", error="cancelled before it started")
            return
        self.state, self.started = "running", time.time()
        try:
            self._end("done", result=work(self.progress, self.token))
        except Cancelled as exc:
            self._end("cancelled", error=str(exc))
        except XaiError as exc:
            self._end("failed", error=str(exc))
        except Exception:  # a bug: logged in full, and the reader gets a log id instead of a traceback
            ref = uuid.uuid4().hex[:12]
            log.exception("%s job %s failed (log id %s)", self.kind, self.id, ref)
            self._end("failed", error=f"internal error (log id {ref}); the server log has the details")

    def view(self) -> dict[str, Any]:
        """A snapshot of everything but the result and the detail."""
        return {"id": self.id, "kind": self.kind, "label": self.label, "state": self.state, "done": self.done,
                "total": self.total, "message": self.message, "seconds_left": self.seconds_left,
                "error": self.error, "meta": dict(self.meta)}


class JobRunner:
    """Runs jobs on ``workers`` threads (the others queue) and remembers the last ``keep`` finished ones."""

    def __init__(self, workers: int = 1, keep: int = 200, name: str = "xai-job", id_prefix: str = "") -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._seq = itertools.count(1)
        self.keep, self.id_prefix = keep, id_prefix

    def submit(self, work: Work, *, kind: str = "job", label: str = "", meta: dict[str, Any] | None = None,
               detail: Any = None) -> Job:
        job = Job(f"{self.id_prefix}{next(self._seq)}-{uuid.uuid4().hex[:12]}", kind, label, meta or {}, detail)
        with self._lock:
            self._jobs[job.id] = job
            finished = [k for k, j in self._jobs.items() if j.state in FINISHED]
            for k in finished[: max(0, len(self._jobs) - self.keep)]:
                del self._jobs[k]
        self._pool.submit(job.run, work)
        return job

    def get(self, job_id: str | None) -> Job:
        with self._lock:
            job = self._jobs.get(job_id) if job_id is not None else None
        if job is None:
            raise UnknownNameError(f"Unknown job {job_id!r} (finished jobs are kept for a while, not forever)")
        return job

    def find(self, kind: str | None = None, running: bool | None = None, **meta: Any) -> list[Job]:
        """Jobs of ``kind`` whose ``meta`` has these values, newest first (``running``: only those not finished)."""
        with self._lock:
            jobs = list(self._jobs.values())
        return [j for j in reversed(jobs) if (kind is None or j.kind == kind)
                and (running is None or j.running == running) and all(j.meta.get(k) == v for k, v in meta.items())]

    def cancel(self, job_id: str) -> Job:
        job = self.get(job_id)
        job.cancel()
        return job

    def shutdown(self) -> None:
        """Cancel every job (each stops at its next check) and stop taking new ones."""
        with self._lock:
            jobs = list(self._jobs.values())
        for j in jobs:
            j.token.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
