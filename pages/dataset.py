"""Dataset page: explain a whole split (a background run any session can follow and cancel; the same settings
resume it) or open a stored run, then see the model's strategies as clusters of maps, its cohorts and where it
fails."""
from __future__ import annotations

import streamlit as st

from ui import runs
from ui.router import page


def main() -> None:
    st.title("Dataset: the model's strategies")
    st.caption("Explain every image of a split, then group the maps: each cluster is one way the model decides. "
               "A cluster that looks somewhere it should not (a marker, a tag, the background) is a shortcut.")
    with st.container(border=True):
        st.subheader("Explain a split")
        runs.start_panel()
        if runs.running():  # the one-second redraw only while a run goes on
            runs.live_runs()
        runs.recent_outcomes()
    st.subheader("Open a run")
    folder = runs.open_panel()
    if folder is not None:
        st.session_state[runs.RUN] = str(folder)
        runs.show_run(folder)


page(main)
