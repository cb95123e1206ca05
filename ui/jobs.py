"""The pages' side of the job runner (:mod:`core.jobs`): runners for the server process (``st.cache_resource``), so
a training, a quality evaluation or a map request goes on through reruns, other pages and other sessions; a session
remembers the id of the job it shows."""
from __future__ import annotations

from typing import Any, Callable

import streamlit as st

from core.errors import UnknownNameError
from core.jobs import Job, JobRunner
from core.modelling.training import TrainConfig, TrainingRun


@st.cache_resource
def runner() -> JobRunner:
    """Trainings and quality evaluations."""
    return JobRunner(workers=2, name="xai-page-job")


@st.cache_resource
def maps_runner() -> JobRunner:
    """Map requests (their own workers: a training never holds a map up)."""
    return JobRunner(workers=2, name="xai-maps")


def start_training(cfg: TrainConfig, models_dir=None) -> Job:
    """Start a training in the background (a bad setting raises here, in the page)."""
    run = TrainingRun(cfg, models_dir)
    return runner().submit(run, kind="training", label=cfg.model_id or cfg.dataset, detail=run,
                           meta={"dataset": cfg.dataset, "model_id": cfg.model_id})


def get(job_id: str | None, pool: JobRunner | None = None) -> Job | None:
    """The job ``job_id`` of ``pool`` (default: :func:`runner`), or None (none, or forgotten)."""
    try:
        return (pool or runner()).get(job_id) if job_id else None
    except UnknownNameError:
        return None


@st.fragment(run_every=1.0)
def live(job_key: str, draw: Callable[..., None], *args: Any) -> None:
    """``draw(job, *args)`` every second while the job under ``job_key`` runs; when it ends the whole page reruns
    (its result, a new model in the lists)."""
    job = get(st.session_state.get(job_key))
    if job is None:
        return
    draw(job, *args)
    if not job.running:
        st.rerun()


def adopt(job_key: str, kind: str, **meta) -> Job | None:
    """The job a page shows under ``job_key``: the newest running job of ``kind`` (with these ``meta`` values) that
    any session started, else the one this session followed last. Jobs belong to the server: after a reload, in
    another tab or on coming back to the page, a running job is shown with its progress and its Cancel."""
    running = runner().find(kind=kind, running=True, **meta)
    job = get(st.session_state.get(job_key))
    if running and (job is None or not job.running):
        job = running[0]
        st.session_state[job_key] = job.id
    return job


def stop(job: Job, keep_best: bool) -> None:
    """Cancel a training; with ``keep_best`` the best epoch so far is saved."""
    job.detail.keep_best = keep_best
    job.cancel()


def start_run(model_path: str, model_id: str, split: str, methods: list[str], *, limit: int | None,
              sample: int | None, seed: int = 0) -> Job:
    """Start (or resume) a whole-split run in the background. Its folder under the runs folder is named by its
    settings, so starting the same run again after a Cancel continues it."""
    from core import config
    from core.runs import explain_split

    what = f"{limit}first" if limit else (f"{sample}sample{seed}" if sample else "all")
    out = config.runs_dir() / f"{model_id}-{split}-{'+'.join(methods)}-{what}"

    def work(progress, cancel):
        return explain_split(model_path, None, split, methods, out, limit=limit, sample=sample, seed=seed,
                             progress=progress, cancel=cancel)

    return runner().submit(work, kind="run", label=f"{model_id} {split}: {', '.join(methods)}",
                           meta={"out": str(out), "model": model_id})
