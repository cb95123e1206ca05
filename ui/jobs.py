"""Training runs in background threads, so a page rerun (any click) or leaving the page does not stop them.

One registry for the server process (``st.cache_resource``); a session remembers the id of the run it started.
Each run's state is written by its thread and only read by pages.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

import core
from core.cancel import CancelToken
from core.training import TrainConfig, TrainProgress, preflight, train

log = logging.getLogger(__name__)


@dataclass
class TrainJob:
    id: int
    cfg: TrainConfig
    cancel: CancelToken = field(default_factory=CancelToken)
    keep_best: bool = False  # set with cancel: keep the best epoch so far
    started: float = field(default_factory=time.time)
    latest: TrainProgress | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    state: str = "running"  # running | done | cancelled | failed
    result: Any = None  # the ModelCard when done
    error: str | None = None
    thread: threading.Thread | None = None

    def on_progress(self, p: TrainProgress) -> None:
        self.latest = p
        if p.history is not None:
            self.history = p.history
        if p.warning:
            self.warnings.append(p.warning)

    def run(self, models_dir=None) -> None:
        try:
            _, card, _ = train(self.cfg, self.on_progress, models_dir, cancel=self.cancel,
                               keep_best_on_cancel=self._keep_best)
            self.result, self.state = card, "done"
        except core.Cancelled as exc:
            self.state, self.error = "cancelled", str(exc)
        except core.XaiError as exc:
            self.state, self.error = "failed", str(exc)
        except Exception as exc:  # a bug: the page must say so in one line; the traceback goes to the log
            log.exception("training run %s failed", self.id)
            self.state, self.error = "failed", f"unexpected {type(exc).__name__}: {exc} (details in the server log)"

    def _keep_best(self) -> bool:
        return self.keep_best

    def stop(self, keep_best: bool) -> None:
        self.keep_best = keep_best
        self.cancel.cancel()

    @property
    def running(self) -> bool:
        return self.state == "running"


class Jobs:
    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.jobs: dict[int, TrainJob] = {}

    def start(self, cfg: TrainConfig, models_dir=None) -> TrainJob:
        preflight(cfg)  # a bad setting is refused here, in the page, not later in the thread
        with self._lock:
            job = TrainJob(next(self._ids), cfg)
            self.jobs[job.id] = job
        job.thread = threading.Thread(target=job.run, args=(models_dir,), name=f"train-{job.id}", daemon=True)
        job.thread.start()
        return job

    def get(self, job_id: int | None) -> TrainJob | None:
        return self.jobs.get(job_id) if job_id is not None else None


@st.cache_resource
def jobs() -> Jobs:
    return Jobs()
