"""Dataset readiness in the UI: where each dataset's files are, and how to get them (download / a folder path)."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

import core
from core.datasets import dataset_info, dataset_status, get_source

from . import cache, state

STATE_ICON = {"ready": ":material/check_circle:", "needs download": ":material/download:",
              "needs files": ":material/folder_open:"}


def root_override(name: str) -> str | None:
    """A folder the user typed for this dataset in this session, if any."""
    return st.session_state.get(state.DATA_ROOTS, {}).get(name)


def status(name: str):
    """The dataset's status where this session reads it (its chosen folder, else the default one)."""
    return dataset_status(name, root=root_override(name))


def label(name: str) -> str:
    s = status(name)
    return f"{dataset_info(name).title} — {s.state}"


def setup_panel(name: str) -> None:
    """Explain what is missing and offer the fix: a download with a byte progress bar, or a folder path."""
    src = get_source(name)
    s = status(name)
    st.warning(f"**{src.info.title}**: {s.detail}")
    if src.downloadable:
        c1, c2 = st.columns([1, 2])
        size = c1.selectbox("Size (px)", src.sizes, key=state.DL_SIZE,
                            help="64 px is the recommended default: better accuracy than 28 and 8x8 CAM cells")
        if c2.button(f"Download {src.info.title} ({size} px)", key=state.DL_BUTTON, type="primary"):
            bar = st.progress(0.0, text="Connecting…")

            def progress(done: int, total: int | None) -> None:
                if total:
                    bar.progress(min(1.0, done / total), text=f"{done / 1e6:.1f} / {total / 1e6:.1f} MB")
                else:
                    bar.progress(0.0, text=f"{done / 1e6:.1f} MB")

            try:
                path = src.download(core.config.data_dir(), size, progress)
            except core.XaiError as exc:
                bar.empty()
                st.error(str(exc))
                return
            st.success(f"Saved {path}")
            cache.clear_all()
            st.rerun()
    with st.form(key=state.PATH_FORM):
        path = st.text_input("…or the folder that holds it", value=root_override(name) or "", key=state.DATA_PATH,
                             help="For MedMNIST: the folder with the .npz file. For image datasets: the folder of "
                                  "class folders (or of train/val/test folders).")
        if st.form_submit_button("Use this folder"):
            p = Path(path.strip()).expanduser()
            if not path.strip():
                st.error("Type the path of a folder first")
            elif not p.is_dir():
                st.error(f"{p} is not a folder")
            else:
                roots = dict(st.session_state.get(state.DATA_ROOTS, {}))
                roots[name] = str(p)
                st.session_state[state.DATA_ROOTS] = roots
                st.rerun()
