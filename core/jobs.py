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

Bounds: at most ``max_queued`` jobs wait (:class:`QueueFull` beyond, which the API answers 429); finished jobs are
forgotten past ``keep`` of them or ``max_age`` seconds. With a :class:`JobStore` (the API's), each job's state is
written to disk when it is submitted and its result when it ends, so the result leaves memory and outlives a restart:
a job the store knows but this process does not (the server restarted) reads back as done, failed, cancelled, or
``interrupted`` (it was queued or running: resubmit it). The store keeps at most ``max_bytes`` and ``max_age``.
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import re
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Literal

from core.cancel import CancelToken
from core.eta import UnitClock
from core.errors import Cancelled, UnknownNameError, XaiError
from core.io import atomic_write_bytes

log = logging.getLogger("xai.jobs")

JobState = Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]
FINISHED: frozenset[str] = frozenset({"done", "failed", "cancelled", "interrupted"})
INTERRUPTED = "the server stopped before this job finished: submit it again"


class QueueFull(XaiError):
    """Too many jobs are waiting; ``retry_after`` says in how many seconds to try again."""

    def __init__(self, message: str, retry_after: int = 10) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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
        self._clock = UnitClock()  # the rate from the first unit finished on
        self._left: float | None = None
        self.result: Any = None
        self.error: str | None = None
        self.token = CancelToken()
        self.on_end: Callable[[Job, JobState], None] | None = None  # the runner's store, told the outcome
        self.stored = False  # the result is in the runner's store on disk, not in memory

    def progress(self, done: int, total: int, message: str = "") -> None:
        self.done, self.total = int(done), int(total)
        if message:
            self.message = message
        self._left = self._clock.left(self.done, self.total)

    @property
    def running(self) -> bool:
        return self.state in ("queued", "running")

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    @property
    def seconds_left(self) -> float | None:
        """From the measured cost per unit since the first unit was done (``None`` until two reports apart)."""
        if self.state != "running" or not self.total:
            return None
        return self._left

    def cancel(self) -> None:
        self.token.cancel()
        if self.state == "queued":
            self._end("cancelled", error="cancelled before it started")

    def _end(self, state: JobState, result: Any = None, error: str | None = None) -> None:
        self.result, self.error, self.finished = result, error, time.time()
        if self.on_end is not None:
            try:
                self.on_end(self, state)
                self.result, self.stored = None, True
            except Exception:  # a full disk or a result that is not JSON: it stays in memory, and it is logged
                log.exception("job %s: its outcome could not be stored", self.id)
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


_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


class JobStore:
    """Jobs on disk, one JSON file each (written atomically): the state when submitted, the outcome when ended.
    Holds at most ``max_bytes`` (oldest files go first) and nothing older than ``max_age`` seconds."""

    def __init__(self, folder: str | os.PathLike, max_bytes: int = 512 * 2**20, max_age: float = 86400.0) -> None:
        self.folder, self.max_bytes, self.max_age = Path(folder), int(max_bytes), float(max_age)
        self._lock = threading.Lock()

    def _path(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.json"

    def save(self, job: Job, state: str) -> None:
        record = {"id": job.id, "kind": job.kind, "label": job.label, "state": state, "done": job.done,
                  "total": job.total, "message": job.message, "error": job.error, "meta": job.meta,
                  "created": job.created, "finished": job.finished,
                  "result": job.result if state in FINISHED else None}
        data = json.dumps(record, separators=(",", ":")).encode()
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self._path(job.id), data)
        self.prune(keep=job.id)

    def load(self, job_id: str) -> dict[str, Any] | None:
        """The stored record of ``job_id`` (``None`` if there is none, or it expired)."""
        if not _JOB_ID.match(job_id or ""):
            return None
        path = self._path(job_id)
        try:
            if time.time() - path.stat().st_mtime > self.max_age:
                return None
            return json.loads(path.read_bytes())
        except (OSError, ValueError):
            return None

    def prune(self, keep: str | None = None) -> None:
        """Delete records past ``max_age``, then the oldest until the store holds at most ``max_bytes``."""
        with self._lock:
            try:
                files = [(p.stat(), p) for p in self.folder.glob("*.json")]
            except OSError:
                return
            now, total = time.time(), 0
            for st, p in sorted(files, key=lambda f: f[0].st_mtime, reverse=True):
                total += st.st_size
                if p.stem != keep and (now - st.st_mtime > self.max_age or total > self.max_bytes):
                    p.unlink(missing_ok=True)
                    total -= st.st_size

    def bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.glob("*.json")) if self.folder.is_dir() else 0


class JobRunner:
    """Runs jobs on ``workers`` threads; at most ``max_queued`` wait (:class:`QueueFull` beyond). Remembers the last
    ``keep`` finished jobs for at most ``max_age`` seconds; with a ``store`` their results live on disk instead of in
    memory (see the module docstring)."""

    def __init__(self, workers: int = 1, keep: int = 200, name: str = "xai-job", id_prefix: str = "", *,
                 max_queued: int | None = None, max_age: float | None = None, store: JobStore | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._seq = itertools.count(1)
        self.keep, self.id_prefix, self.max_queued, self.max_age = keep, id_prefix, max_queued, max_age
        self.store = store

    def submit(self, work: Work, *, kind: str = "job", label: str = "", meta: dict[str, Any] | None = None,
               detail: Any = None) -> Job:
        job = Job(f"{self.id_prefix}{next(self._seq)}-{uuid.uuid4().hex[:12]}", kind, label, meta or {}, detail)
        with self._lock:
            self._forget_old()
            waiting = sum(j.state == "queued" for j in self._jobs.values())
            if self.max_queued is not None and waiting >= self.max_queued:
                raise QueueFull(f"{waiting} jobs are already waiting (the limit is {self.max_queued}); "
                                "retry when some have finished")
            self._jobs[job.id] = job
        if self.store is not None:
            self.store.save(job, "queued")  # after a restart, a job the store holds unfinished was interrupted
            job.on_end = self.store.save
        self._pool.submit(job.run, work)
        return job

    def _forget_old(self) -> None:
        finished = [k for k, j in self._jobs.items() if j.state in FINISHED]
        old = {k for k in finished if self.max_age is not None and time.time() - self._jobs[k].finished > self.max_age}
        for k in finished[: max(0, len(self._jobs) - self.keep)]:
            old.add(k)
        for k in old:
            del self._jobs[k]

    def get(self, job_id: str | None) -> Job:
        with self._lock:
            self._forget_old()
            job = self._jobs.get(job_id) if job_id is not None else None
        if job is None and self.store is not None and job_id is not None:
            job = self._restored(job_id)
        if job is None:
            raise UnknownNameError(f"Unknown job {job_id!r} (finished jobs are kept for a while, not forever)")
        return job

    def _restored(self, job_id: str) -> Job | None:
        """A job of an earlier process, from the store: finished as it was, or interrupted."""
        record = self.store.load(job_id)
        if record is None:
            return None
        job = Job(record["id"], record["kind"], record["label"], record.get("meta") or {})
        job.done, job.total, job.message = record["done"], record["total"], record["message"]
        job.created, job.finished, job.stored = record["created"], record["finished"] or time.time(), True
        job.state = record["state"] if record["state"] in FINISHED else "interrupted"
        job.error = INTERRUPTED if job.state == "interrupted" else record["error"]
        return job

    def result(self, job: Job) -> Any:
        """A finished job's result, from memory or from the store."""
        if not job.stored or self.store is None:
            return job.result
        record = self.store.load(job.id)
        return None if record is None else record.get("result")

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
