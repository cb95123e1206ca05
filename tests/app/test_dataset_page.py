"""The Dataset page: start a whole-split run as a server job (progress, Cancel, resume), open a stored run (the
CLI's), and see its clusters, cohorts and the agreement of two methods; an image opens on Explain."""
from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers import APP, WAIT_LIMIT

pytestmark = pytest.mark.usefixtures("fresh_caches")


@pytest.fixture(scope="module")
def stored_run(tiny_model_dir):
    """A CLI-style run of the tiny model in the runs folder: Grad-CAM and saliency on 64 test images."""
    from core import config
    from core.runs import explain_split

    out = config.runs_dir() / "cli-run"
    explain_split(tiny_model_dir, None, "test", ["grad_cam", "saliency"], out, limit=64, resume=False)
    return out


def _page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/dataset.py").run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    return at


def test_a_stored_run_shows_clusters_cohorts_and_agreement(stored_run):
    at = _page()
    assert at.selectbox(key="dataset.open.pick").value == str(stored_run)
    assert "64 images" in " ".join(c.value for c in at.caption)
    clusters = at.dataframe[0].value
    assert clusters["images"].sum() > 0 and {"cluster", "accuracy", "true classes"} <= set(clusters.columns)
    assert len(at.get("plotly_chart")) == 3  # by cluster, right/wrong, eigengap
    n_clusters = len(clusters)
    assert len([e for e in at.expander if e.label.startswith("Cluster ")]) == n_clusters
    cohorts = at.dataframe[1].value
    assert cohorts["images"].sum() == 64  # every image of the run is in exactly one cohort
    at.radio(key="dataset.cohort").set_value("right / wrong").run()
    assert set(at.dataframe[1].value["cohort"]) <= {"right", "wrong"}
    assert any("Adjusted Rand index" in m.label for m in at.metric)
    at.number_input(key="dataset.k").set_value(2).run()
    assert not at.exception and len(at.dataframe[0].value) == 2
    at.selectbox(key="dataset.method").set_value("saliency").run()
    at.radio(key="dataset.by").set_value("label").run()
    assert not at.exception and not at.error


def test_an_image_of_a_cluster_opens_on_explain(stored_run):
    at = _page()
    button = next(b for b in at.button if b.key and b.key.startswith("dataset.open."))
    index = int(button.key.rsplit(".", 1)[1])
    button.click().run()
    assert not at.exception
    assert at.session_state["image_index"] == index and at.session_state["split"] == "test"
    assert at.number_input(key="image_index").value == index  # Explain is showing that image


def test_a_folder_that_holds_no_run_is_a_clear_message(stored_run, tmp_path):
    at = _page()
    at.text_input(key="dataset.open.path").set_value(str(tmp_path)).run()
    assert not at.exception
    assert any("no manifest.json" in e.value and "holds no run" in e.value for e in at.error)


def test_start_a_run_follow_it_and_open_it(tiny_model_dir, stored_run):
    at = _page()
    at.multiselect(key="dataset.start.methods").set_value(["grad_cam"]).run()
    at.number_input(key="dataset.start.n").set_value(24).run()
    at.button(key="dataset.start.go").click().run()
    assert not at.exception and not at.error
    folder = at.session_state["dataset.follow"]
    deadline = time.time() + WAIT_LIMIT
    while time.time() < deadline and not (__import__("pathlib").Path(folder) / "manifest.json").exists():
        time.sleep(0.5)
    at.run()
    assert not at.exception
    assert at.selectbox(key="dataset.open.pick").value == folder
    assert "24 images" in " ".join(c.value for c in at.caption), [c.value[:80] for c in at.caption]


def test_a_slow_method_over_a_whole_split_says_why(tiny_model_dir, stored_run):
    from ui import jobs

    at = _page()
    at.multiselect(key="dataset.start.methods").set_value(["lime"]).run()
    at.radio(key="dataset.start.how").set_value("Whole split").run()
    at.button(key="dataset.start.go").click().run()
    deadline = time.time() + WAIT_LIMIT
    while time.time() < deadline and jobs.runner().find(kind="run", running=True):
        time.sleep(0.2)
    at.run()
    assert any("lime is too slow" in e.value and "sample" in e.value for e in at.error)
