"""A training job on any page (Train, and Explain's "Train a model"): progress with the time left, the curves so
far, Cancel / Stop-and-keep-best while it runs, and its outcome once it ends. The job belongs to the server's
runner (:mod:`ui.jobs`); the page only draws it."""
from __future__ import annotations

import streamlit as st

from core.eta import format_left
from core.jobs import Job
from core.present import charts
from ui import jobs


def show(job: Job, prefix: str) -> None:
    """The job as it is now; widget keys start with ``prefix`` (``train.cancel``, ``train.keep_best``)."""
    run = job.detail
    p = run.latest
    if job.running:
        if p is not None:
            left = f" · {format_left(p.seconds_left)}" if p.seconds_left is not None else " · estimating the time left…"
            st.progress(p.fraction, text=f"{run.cfg.model_id or job.label}: {p.message}{left}")
        else:
            st.progress(0.0, text="Starting…" if job.state == "running" else "Waiting for another training to end…")
        c1, c2 = st.columns(2)
        c1.button("Cancel (keep nothing)", key=f"{prefix}.cancel", icon=":material/cancel:", on_click=jobs.stop,
                  args=(job, False))
        c2.button("Stop and keep the best epoch so far", key=f"{prefix}.keep_best", icon=":material/save:",
                  on_click=jobs.stop, args=(job, True), help="Saves the epoch that did best on val, labelled as "
                                                             "stopped early")
    elif job.state == "done":
        card = job.result
        m = card.metrics
        st.success(f"Trained **{card.id}** ({card.training['status']}): test accuracy {m['accuracy']:.1%}, balanced "
                   f"accuracy {m['balanced_accuracy']:.1%}, ROC AUC "
                   f"{'n/a' if m['roc_auc'] is None else format(m['roc_auc'], '.3f')}; best epoch on val "
                   f"{card.training['best_epoch']} of {card.training['epochs_run']}, {card.training['seconds']} s. "
                   "It is in every model list now.")
    elif job.state == "cancelled":
        st.info(f"Cancelled: {job.error}")
    else:
        st.error(f"Training failed: {job.error}")
    for w in dict.fromkeys(run.warnings):
        st.caption(f":orange[warning: {w}]")
    if run.history:
        loss, acc = charts.training_curves(run.history)
        c1, c2 = st.columns(2)
        c1.plotly_chart(loss, width="stretch", key=f"{prefix}.loss.{job.id}.{len(run.history)}")
        c2.plotly_chart(acc, width="stretch", key=f"{prefix}.acc.{job.id}.{len(run.history)}")


def follow(job_key: str, prefix: str) -> Job | None:
    """The job under ``job_key`` (see :func:`ui.jobs.adopt`): live while it runs, its outcome once it ended."""
    job = jobs.get(st.session_state.get(job_key))
    if job is not None and job.running:
        jobs.live(job_key, show, prefix)
    elif job is not None:
        show(job, prefix)
    return job
