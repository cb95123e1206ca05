"""The page list and router, and a guard for pages reached without it.

Streamlit decides once per process, before any script runs, whether a ``pages/`` folder means the
legacy (v1) multipage mode. Until ``st.navigation`` has run, a first request for ``/explain`` (and
every AppTest run) therefore executes ``pages/explain.py`` directly: no page config, a file-name
sidebar. Every page calls :func:`ensure_router` first; in that case it runs the router *within the
same script run* (so widget events such as a button click are kept), which switches Streamlit to
router mode and executes the requested page under it, then stops the outer run.
"""
import logging
from typing import Callable

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

log = logging.getLogger("xai.pages")

#: what a user sees when a page meets an unexpected exception (the traceback goes to the server log)
UNEXPECTED = ("Something went wrong on this page ({kind}). Try another setting, method or image, or reload the "
              "page; the details are in the server log.")


#: every page: (file, title, icon, what its link on Home says); Home links every other page from this list
PAGES = [
    ("pages/home.py", "Home", ":material/home:", "Home"),
    ("pages/explain.py", "Explain", ":material/image_search:", "Explain one image"),
    ("pages/compare.py", "Compare", ":material/grid_view:", "Compare methods"),
    ("pages/quality.py", "Quality", ":material/analytics:", "Which map to trust"),
    ("pages/dataset.py", "Dataset", ":material/hub:", "Explain a whole split"),
    ("pages/performance.py", "Performance", ":material/monitoring:", "Model performance"),
    ("pages/train.py", "Train", ":material/model_training:", "Train a model"),
    ("pages/import_model.py", "Import", ":material/upload_file:", "Import a model"),
    ("pages/data.py", "Data", ":material/dataset:", "Datasets"),
]


def pages() -> list:
    return [st.Page(path, title=title, icon=icon, default=path == "pages/home.py") for path, title, icon, _ in PAGES]


def _icon():
    """The favicon, drawn here: a ``:material/...:`` page icon makes the browser fetch a font from the internet,
    which fails offline on every page load."""
    import numpy as np
    from PIL import Image

    from core.present.render import colorize

    yy, xx = np.mgrid[-1:1:32j, -1:1:32j]
    heat = np.clip(1.2 - np.hypot(xx + 0.15, yy - 0.1) * 1.3, 0, 1)
    return Image.fromarray(colorize(heat))


def run_app() -> None:
    st.set_page_config(page_title="XAI Dashboard", page_icon=_icon(), layout="wide")
    from ui.cache import warm_up_in_background

    warm_up_in_background()
    st.navigation(pages()).run()


def ensure_router() -> None:
    if PagesManager.uses_pages_directory:
        run_app()
        st.stop()


def page(main: Callable[[], None]) -> None:
    """Run a page: under the router (see :func:`ensure_router`), and with any unexpected exception turned into
    one line with what to try, never a traceback (Streamlit's own stop/rerun signals are not exceptions)."""
    ensure_router()
    try:
        main()
    except Exception as exc:
        log.exception("unexpected error on a page")
        st.error(UNEXPECTED.format(kind=type(exc).__name__), icon=":material/error:")
