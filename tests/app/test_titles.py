"""Titles, not ids, wherever a person reads: every page of the router, rendered in states that show methods, names no
registered method by its id (``grad_cam``) standing alone.

The rule, decided here:

* **Read** is every text a page puts on screen: titles, headers, Markdown, captions, plain text, alerts, progress
  lines, metrics (label, value, delta), the labels, options (as formatted) and help of every widget and button, page
  links, expander and tab labels, image captions, every column name, index value and cell of a dataframe, and the
  names, categories, texts and titles of a chart.
* **Not read** (code, not prose): ``st.code`` and ``st.json`` blocks, and code spans in Markdown (```` `...` ````,
  ``<code>``): commands such as ``python -m core explain --method grad_cam`` name methods as the command line takes
  them. Widget keys and what a user typed are not the page's text either.
* **Standing alone**: the id, case-sensitive, not joined to a letter, digit or ``_``, nor to ``-``, ``+``, ``/``,
  ``.``, ``=`` on either side (``.`` only when a letter or digit follows it). A file or folder name
  (``shapes-small_cnn-test-grad_cam-500first``, ``runs/x/grad_cam.parquet``) or a parameter's key
  (``lime.num_samples``) is therefore not a standalone id, while ``methods grad_cam, saliency.`` is.
"""
from __future__ import annotations

import json
import re
from types import SimpleNamespace
from typing import Iterator

import pytest
from streamlit.testing.v1 import AppTest

import core
from tests.helpers import APP, rerun_until

pytestmark = pytest.mark.usefixtures("fresh_caches")

IDS = sorted(core.list_methods(), key=len, reverse=True)
STANDALONE = re.compile(r"(?<![\w\-+/.=])(" + "|".join(map(re.escape, IDS)) + r")(?![\w\-+/=]|\.\w)")
CODE = re.compile(r"```.*?```|`[^`]*`|<code>.*?</code>", re.S)
#: widget protos: the fields a person reads (options are read as the widget formats them)
WIDGET_TEXT = ("label", "help", "placeholder")


def _plotly_text(spec: dict) -> Iterator[str]:
    layout = spec.get("layout", {})
    for trace in spec.get("data", []):
        for field in ("name", "text", "hovertext", "x", "y", "labels"):
            value = trace.get(field)
            values = value if isinstance(value, list) else [value]
            yield from (v for v in values if isinstance(v, str))
    for axis in [k for k in layout if k.startswith(("xaxis", "yaxis"))]:
        yield from (t for t in layout[axis].get("ticktext", []) if isinstance(t, str))
        title = layout[axis].get("title")
        yield from ([title.get("text", "")] if isinstance(title, dict) else [])
    title = layout.get("title")
    yield from ([title.get("text", "")] if isinstance(title, dict) else [])
    yield from (a.get("text", "") for a in layout.get("annotations", []))


def read_text(at: AppTest) -> Iterator[tuple[str, str]]:
    """Every (element type, text) a person reads on the page as rendered (see the module's rule), code removed."""
    for node in at._tree:
        kind, proto = getattr(node, "type", ""), getattr(node, "proto", None)
        if kind in ("code", "json") or proto is None:
            continue
        texts: list[str] = []
        if kind in ("markdown", "caption", "title", "header", "subheader", "text", "latex", "error", "warning", "info",
                    "success", "exception"):
            texts.append(str(getattr(node, "value", "")))
        elif kind == "metric":
            texts += [proto.label, proto.body, proto.delta]
        elif kind in ("dataframe", "arrow_data_frame"):
            frame = node.value
            texts += [str(c) for c in frame.columns] + [str(i) for i in frame.index]
            texts += [str(v) for v in frame.to_numpy().ravel()]
        elif kind == "plotly_chart":
            texts += list(_plotly_text(json.loads(proto.spec)))
        elif kind == "imgs":
            texts += [img.caption for img in proto.imgs]
        elif kind == "progress":
            texts.append(proto.text)
        elif kind == "expandable":
            texts.append(proto.expandable.label)
        elif kind == "tab":
            texts.append(proto.tab.label)
        else:  # widgets, buttons, page links
            texts += [str(getattr(proto, f)) for f in WIDGET_TEXT if hasattr(proto, f) and isinstance(
                getattr(proto, f), str)]
            if hasattr(node, "options"):
                texts += [str(o) for o in node.options]
        for text in texts:
            yield kind, CODE.sub(" ", text or "")


def ids_read(at: AppTest) -> list[tuple[str, str, str]]:
    """(element type, id, text) of every registered method id standing alone in the page's read text."""
    return [(kind, m.group(1), text[:160]) for kind, text in read_text(at) for m in STANDALONE.finditer(text)]


def test_the_rule_tells_an_id_from_a_name_a_path_and_code():
    hit = lambda s: [m.group(1) for m in STANDALONE.finditer(CODE.sub(" ", s))]  # noqa: E731
    assert hit("methods grad_cam, saliency.") == ["grad_cam", "saliency"]
    assert hit("Method: grad_cam") == ["grad_cam"] and hit("(lime)") == ["lime"]
    assert hit("shapes-small_cnn-test-grad_cam+saliency-500first") == []  # a folder name
    assert hit("runs/x/grad_cam.parquet, lime.num_samples, --method=grad_cam") == []  # a path, a key, a flag
    assert hit("run `python -m core explain --method grad_cam`") == []  # code
    assert hit("Grad-CAM, LIME, Saliency, guided_grad_cam_x") == []  # titles; another word


@pytest.fixture(scope="module")
def stored_run(tiny_model_dir):
    """A run of the tiny model in the runs folder (Grad-CAM and Saliency on 32 test images)."""
    from core import config
    from core.runs import explain_split

    out = config.runs_dir() / "titles-run"
    explain_split(tiny_model_dir, None, "test", ["grad_cam", "saliency"], out, limit=32, resume=False)
    return out


def _open(path: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=240).run()
    if path:
        at.switch_page(path).run()
    assert not at.exception, at.exception
    return at


def _explain(at: AppTest) -> None:
    at.multiselect(key="methods").set_value(["grad_cam", "saliency", "lime"]).run()
    at.selectbox(key="param.lime.mode").set_value("fixed").run()
    at.number_input(key="param.lime.num_samples").set_value(40).run()


def _compare(at: AppTest) -> None:
    at.multiselect(key="cmp_indices").set_value([0, 1]).run()
    at.multiselect(key="cmp_methods").set_value(["grad_cam", "saliency"]).run()


def _quality(at: AppTest) -> None:
    at.number_input(key="q.n").set_value(2).run()
    at.multiselect(key="q.methods").set_value(["grad_cam", "saliency"]).run()
    at.multiselect(key="q.metrics").set_value(["deletion", "sparseness"]).run()
    at.button(key="q.compute").click().run()
    rerun_until(at, lambda a: bool(a.dataframe) or bool(a.error))


def _dataset(at: AppTest) -> None:
    at.multiselect(key="dataset.start.methods").set_value(["grad_cam", "saliency"]).run()
    at.selectbox(key="dataset.method").set_value("saliency").run()


#: each page of the router and what brings its methods on screen (every page of ``ui.router.PAGES`` is here)
STATES = {"pages/home.py": None, "pages/explain.py": _explain, "pages/compare.py": _compare,
          "pages/quality.py": _quality, "pages/dataset.py": _dataset, "pages/performance.py": None,
          "pages/train.py": None, "pages/import_model.py": None, "pages/data.py": None}


def test_every_page_is_covered():
    from ui.router import PAGES

    assert set(STATES) == {path for path, *_ in PAGES}


@pytest.mark.parametrize("path", list(STATES))
def test_no_page_shows_a_method_id_where_a_person_reads(path, tiny_model_dir, stored_run):
    at = _open(None if path == "pages/home.py" else path)
    if STATES[path]:
        STATES[path](at)
    assert not at.exception, at.exception
    assert any(True for _ in read_text(at))  # the page drew text
    if path in ("pages/explain.py", "pages/compare.py", "pages/quality.py", "pages/dataset.py", "pages/home.py"):
        assert "Grad-CAM" in " ".join(t for _, t in read_text(at))  # the state shows methods, by title
    assert not ids_read(at), ids_read(at)


def test_the_dataset_pages_progress_line_names_methods_by_title_and_the_time_left_once():
    from ui import runs

    job = SimpleNamespace(label="shapes-small_cnn test: grad_cam, integrated_gradients", total=64, done=12,
                          message="3.4 images/s, about 2 min left", seconds_left=290.0)
    line = runs.progress_line(job)
    assert line == "shapes-small_cnn test: Grad-CAM, Integrated Gradients: 12 / 64 images · 3.4 images/s · " \
                   "about 5 min left"
    assert line.count("left") == 1 and not STANDALONE.search(line)
    job.seconds_left = None  # not yet measured: the run's own estimate, once
    assert runs.progress_line(job).endswith("3.4 images/s · about 2 min left")
    job.total = 0
    assert runs.progress_line(job) == "shapes-small_cnn test: Grad-CAM, Integrated Gradients: planning (measuring one " \
                                      "batch)…"
