"""The pages' one compute loop for maps: what is already in the shared result store is shown at once; the missing
maps are computed one method at a time (a batched engine call each) with a progress bar and the time left; Cancel
stops it and keeps what is done; a cancelled request is not computed again until "Compute the rest"."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import streamlit as st

import core
from core.explainers import get_method
from core.present import captions
from ui import cache, state
from ui.pickers import Selection, explain_cached
from ui.progress import EngineProgress

#: method -> one Explanation (or None: not computed) per image
Maps = dict[str, list["core.Explanation | None"]]


@dataclass(frozen=True)
class Keys:
    """A page's widget and session keys for the loop."""

    cancel: str
    resume: str
    cancelled: str  # the session key holding the request the user cancelled


EXPLAIN_KEYS = Keys(state.CANCEL, state.RESUME, state.CANCELLED)
COMPARE_KEYS = Keys(state.CMP_CANCEL, state.CMP_RESUME, state.CMP_CANCELLED)


def request_key(weights_sha256: str, image_digest: str, methods: Sequence[str], params: dict, targets: Sequence[int]) -> str:
    """What identifies one request (for Cancel: a cancelled request is not computed again)."""
    import json

    return json.dumps([weights_sha256, image_digest, list(methods), params, [int(t) for t in targets]],
                      sort_keys=True, default=str)


def maps(sel: Selection, images: Sequence[np.ndarray], methods: Sequence[str], params: dict[str, dict],
         targets: Sequence[int], keys: Keys, redraw: Callable[[Maps], None] | None = None) -> tuple[Maps, bool]:
    """Every method's maps of ``images`` for ``targets``, and whether the user cancelled this request (its missing
    maps are then not computed). ``redraw(known)`` is called as soon as something is known and after each method
    while computing, so results appear as they come. Errors are shown, one per method."""
    request = request_key(sel.card.weights_sha256, ",".join(cache.image_digest(a) for a in images), methods, params,
                          targets)
    known: Maps = {m: explain_cached(sel, images, m, params[m], targets, compute=False) for m in methods}
    missing = [m for m in methods if any(e is None for e in known[m])]
    cancelled = st.session_state.get(keys.cancelled) == request
    controls = st.empty()
    errors: list[str] = []
    if missing and not cancelled:
        controls.button("Cancel", key=keys.cancel, icon=":material/cancel:", on_click=state.set_value,
                        args=(keys.cancelled, request), help="Stop computing; the maps already computed stay")
        if redraw:
            redraw(known)
        bar = EngineProgress(len(missing))
        for k, m in enumerate(missing):
            bar.start(k, f"{get_method(m).title} on {len(images)} image{'s' * (len(images) != 1)}")
            try:
                known[m] = explain_cached(sel, images, m, params[m], targets, bar)
            except core.XaiError as exc:
                errors.append(f"{get_method(m).title}: {exc}")
            if redraw and k < len(missing) - 1:
                redraw(known)
        bar.empty()
        controls.empty()
    elif missing:
        with controls.container():
            st.info(captions.cancelled_note({get_method(m).title: sum(e is None for e in known[m]) for m in missing}))
            st.button("Compute the rest", key=keys.resume, on_click=state.set_value, args=(keys.cancelled, None))
    for e in errors:
        st.error(e)
    return known, cancelled
