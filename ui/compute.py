"""The pages' one compute loop for maps: what is already in the shared result store is shown at once; the missing
maps are computed by a job on the server's map runner (one batched engine call per method), which the page follows
with a progress bar, the time left in the current step and Cancel, and redraws as each method is done. The job
belongs to the server: a reload or another tab with the same request follows the same job (the Compare page takes
the running job's selections), and nothing is computed twice. A cancelled request is not computed again until
"Compute the rest"."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import streamlit as st

import core
from core.eta import format_left
from core.explainers import get_method
from core.jobs import Job
from core.present import captions
from ui import cache, jobs, state
from ui.pickers import Selection, explain_cached
from ui.progress import UNITS, staged

#: method -> one Explanation (or None: not computed) per image
Maps = dict[str, list["core.Explanation | None"]]


@dataclass(frozen=True)
class Keys:
    """A page's widget and session keys for the loop."""

    cancel: str
    resume: str
    cancelled: str  # the session key holding the request the user cancelled
    page: str  # the page whose selections a job carries (a new session on that page takes them)


EXPLAIN_KEYS = Keys(state.CANCEL, state.RESUME, state.CANCELLED, "explain")
COMPARE_KEYS = Keys(state.CMP_CANCEL, state.CMP_RESUME, state.CMP_CANCELLED, "compare")


def request_key(weights_sha256: str, image_digest: str, methods: Sequence[str], params: dict, targets: Sequence[int]) -> str:
    """What identifies one request (for Cancel: a cancelled request is not computed again)."""
    return json.dumps([weights_sha256, image_digest, list(methods), params, [int(t) for t in targets]],
                      sort_keys=True, default=str)


def running(page: str) -> Job | None:
    """The newest running map job started from ``page`` (by any session)."""
    found = jobs.maps_runner().find(kind="maps", running=True, page=page)
    return found[0] if found else None


def expected_seconds(sel: Selection, images: int, methods: Sequence[str], params: dict[str, dict]) -> list[float | None]:
    """Seconds each method is expected to take on ``images`` images of this model: its measured rate, kept per model
    for the server's life (:func:`core.explainers.timing.estimator_for`), times the work it is expected to do;
    ``None`` where it cannot be estimated."""
    from core.explainers.timing import estimator_for

    est = estimator_for(sel.model, (sel.card.channels, sel.card.input_size, sel.card.input_size))
    out: list[float | None] = []
    for m in methods:
        try:
            out.append(est.seconds(m, images=images, **params.get(m, {})))
        except core.XaiError:
            out.append(None)
    return out


def _submit(sel: Selection, images: Sequence[np.ndarray], missing: list[str], params: dict[str, dict],
            targets: Sequence[int], request: str, keys: Keys, selections: dict) -> Job:
    def work(progress, cancel):
        errors: list[str] = []
        expected = expected_seconds(sel, len(images), missing, params)
        report = staged(progress, expected)  # a step per method, in model images; the time left is the whole job's
        if all(e is not None for e in expected):
            progress(0, len(missing) * UNITS, f"{len(missing)} method{'s' * (len(missing) != 1)} on {len(images)} "
                     f"image{'s' * (len(images) != 1)} · {format_left(sum(expected))}")
        for k, m in enumerate(missing):
            title = get_method(m).title
            try:
                explain_cached(sel, images, m, params[m], targets,
                               lambda done, total, k=k, title=title: report(k, len(missing), title, done, total),
                               cancel=cancel)
            except core.Cancelled:
                raise
            except core.XaiError as exc:
                errors.append(f"{title}: {exc}")
            progress((k + 1) * UNITS, len(missing) * UNITS, "")
        return errors

    return jobs.maps_runner().submit(work, kind="maps", label=f"{len(missing)} method{'s' * (len(missing) != 1)} on "
                           f"{len(images)} image{'s' * (len(images) != 1)}",
                           meta={"request": request, "page": keys.page, "selections": selections})


def _cancel(keys: Keys, request: str, job: Job) -> None:
    st.session_state[keys.cancelled] = request
    job.cancel()


def maps(sel: Selection, images: Sequence[np.ndarray], methods: Sequence[str], params: dict[str, dict],
         targets: Sequence[int], keys: Keys, redraw: Callable[[Maps], None] | None = None,
         selections: dict | None = None) -> tuple[Maps, bool]:
    """Every method's maps of ``images`` for ``targets``, and whether the user cancelled this request (its missing
    maps are then not computed). ``redraw(known)`` is called as soon as something is known and after each method
    while computing, so results appear as they come. Errors are shown, one per method. ``selections``: the page's
    widget values that reproduce this request (a new session on the page takes them while the job runs)."""
    request = request_key(sel.card.weights_sha256, ",".join(cache.image_digest(a) for a in images), methods, params,
                          targets)

    def read() -> Maps:
        return {m: explain_cached(sel, images, m, params[m], targets, compute=False) for m in methods}

    known = read()
    missing = [m for m in methods if any(e is None for e in known[m])]
    cancelled = st.session_state.get(keys.cancelled) == request
    controls = st.empty()
    errors: list[str] = []
    if missing and not cancelled:
        found = jobs.maps_runner().find(kind="maps", running=True, request=request)  # this request, from any session
        mine = f"maps.job.{keys.page}"
        previous = jobs.get(st.session_state.get(mine), jobs.maps_runner())
        if previous is not None and previous.running and previous.meta["request"] != request:
            previous.cancel()  # this session's last request, left for another one: not worth finishing
        job = found[0] if found else _submit(sel, images, missing, params, targets, request, keys, selections or {})
        st.session_state[mine] = job.id
        controls.button("Cancel", key=keys.cancel, icon=":material/cancel:", on_click=_cancel,
                        args=(keys, request, job), help="Stop computing; the maps already computed stay")
        if redraw:
            redraw(known)
        bar, shown = st.progress(0.0, text="Computing attributions…"), 0
        while job.running:
            bar.progress(job.fraction, text=job.message or "Waiting for a worker…")
            if redraw and job.done // UNITS > shown:  # a method is done: draw its maps
                shown = job.done // UNITS
                redraw(read())
            time.sleep(0.2)
        bar.empty()
        controls.empty()
        known = read()
        if job.state == "done":
            errors = list(job.result or [])
        elif job.state == "cancelled":
            st.session_state[keys.cancelled] = request
            cancelled = True
        elif job.state == "failed":
            errors = [job.error or "the computation failed"]
    if cancelled and any(e is None for m in methods for e in known[m]):
        missing = [m for m in methods if any(e is None for e in known[m])]
        with controls.container():
            st.info(captions.cancelled_note({get_method(m).title: sum(e is None for e in known[m]) for m in missing}))
            st.button("Compute the rest", key=keys.resume, on_click=state.set_value, args=(keys.cancelled, None))
    for e in errors:
        st.error(e)
    return known, cancelled
