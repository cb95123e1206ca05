"""Dataset readiness in the UI: where each dataset's files are, and how to get them (download / a folder path)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

import core
from core import settings
from core.modelling.data_roots import locate
from core.datasets import Status, dataset_info, dataset_status, get_source

from . import cache, state

STATE_ICON = {"ready": ":material/check_circle:", "needs download": ":material/download:",
              "needs files": ":material/folder_open:", "photos only": ":material/photo_camera:"}


def chosen_root(name: str) -> str | None:
    """The folder chosen for this dataset: in this session, else remembered from an earlier one."""
    return st.session_state.get(state.DATA_ROOTS, {}).get(name) or settings.dataset_roots().get(name)


def resolve(name: str, card: Any = None) -> tuple[str | None, Status]:
    """Where to read ``name`` from, and its status there: the folder chosen in this session, else the rule every face
    follows (:func:`core.modelling.data_roots.locate`: remembered, default, then a model's recorded folder)."""
    return locate(name, given=st.session_state.get(state.DATA_ROOTS, {}).get(name), card=card)


def status(name: str) -> Status:
    """The dataset's status where this session reads it (see :func:`resolve`)."""
    return resolve(name)[1]


def label(name: str) -> str:
    """The dataset's title: a widget's option labels must not change between runs, or Streamlit forgets the choice."""
    return dataset_info(name).title


def state_caption(name: str) -> str:
    s = status(name)
    return f"{STATE_ICON[s.state]} {s.state}" + ("" if s.ready else f": {s.detail}")


def setup_panel(name: str) -> None:
    """Explain what is missing and offer the fix: a download with a byte progress bar, or a folder path."""
    src = get_source(name)
    s = status(name)
    if src.photos_only:
        st.info(f"**{src.info.title}**: {s.detail}")
        return
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
        path = st.text_input("…or the folder that holds it", value=chosen_root(name) or "", key=state.DATA_PATH,
                             help="For MedMNIST: the folder with the .npz file. For image datasets: the folder of "
                                  "class folders (or of train/val/test folders).")
        if st.form_submit_button("Use this folder"):
            p = Path(path.strip()).expanduser()
            if p.is_file() and p.suffix == ".npz":  # the file itself: use its folder
                p = p.parent
            if not path.strip():
                st.error("Type the path of a folder first")
            elif not p.is_dir():
                st.error(f"{p} is not a folder")
            elif not (found := dataset_status(name, root=p)).ready:
                st.error(f"{p}: {found.detail}")
            else:
                roots = dict(st.session_state.get(state.DATA_ROOTS, {}))
                roots[name] = str(p)
                st.session_state[state.DATA_ROOTS] = roots
                try:
                    settings.remember_dataset_root(name, p)
                except OSError as exc:  # remembered for this session only
                    st.warning(f"Could not remember the folder for later sessions: {exc}")
                cache.clear_all()
                st.rerun()
