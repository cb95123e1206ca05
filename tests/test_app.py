"""AppTest runs of every page with a tiny model."""
import json
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from core import get_method

from tests.conftest import ROOT

APP = str(ROOT / "streamlit_app.py")


@pytest.fixture(autouse=True)
def fresh_caches():
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def _run_explain(at: AppTest | None = None) -> AppTest:
    at = at or AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/explain.py").run()
    return at


def _map_captions(at: AppTest) -> list[str]:
    titles = {get_method(m).title for m in ("grad_cam", "integrated_gradients", "saliency")}
    caps = [im.proto.imgs[0].caption for im in at.get("image") if im.proto.imgs]
    return [c for c in caps if c.split(" → ")[0] in titles]


def test_home_page(tiny_model_dir):
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "Grad-CAM" in text and "shapes-small_cnn" in text


def test_explain_page_two_methods_two_maps(tiny_model_dir):
    at = _run_explain()
    assert not at.exception and not at.error
    assert len(_map_captions(at)) == 3  # the default three methods
    at.multiselect(key="methods").set_value(["grad_cam", "saliency"]).run()
    assert not at.exception
    caps = _map_captions(at)
    assert len(caps) == 2 and caps[0].startswith("Grad-CAM") and caps[1].startswith("Saliency")
    assert len(at.get("plotly_chart")) == 2  # top-k probabilities and per-class metrics
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["data"][0]["type"] == "bar"


def test_explain_page_controls(tiny_model_dir):
    at = _run_explain()
    at.number_input(key="image_index").set_value(5).run()
    at.selectbox(key="target").set_value(2).run()
    assert not at.exception
    caps = _map_captions(at)
    assert caps and all(" → triangle " in c for c in caps)  # class 2 explained on every map
    at.number_input(key="param.integrated_gradients.n_steps").set_value(8).run()
    at.selectbox(key="param.integrated_gradients.baseline").set_value("blur").run()
    at.button(key="random_image").click().run()
    at.button(key="gallery.1").click().run()
    assert not at.exception and not at.error
    assert at.number_input(key="image_index").value == 1 + (at.number_input(key="image_index").value // 8) * 8


def test_explain_page_without_models_offers_training(isolated_dirs, tmp_path, monkeypatch):
    monkeypatch.setenv("XAI_MODELS_DIR", str(tmp_path / "empty_models"))
    at = _run_explain()
    assert not at.exception
    assert any("No trained model" in i.value for i in at.info)
    at.number_input(key="train_epochs").set_value(1).run()
    at.button(key="train").click().run()
    assert not at.exception and not at.error
    assert (tmp_path / "empty_models" / "shapes-small_cnn" / "card.json").is_file()
    assert len(_map_captions(at)) == 3  # after training the page shows maps straight away


def test_corrupt_model_gives_a_message_not_a_traceback(tiny_model_dir, tmp_path, monkeypatch):
    models = tmp_path / "models"
    shutil.copytree(tiny_model_dir, models / "broken")
    (models / "broken" / "weights.pt").write_bytes(b"rubbish")
    monkeypatch.setenv("XAI_MODELS_DIR", str(models))
    at = _run_explain()
    assert not at.exception
    assert any("SHA-256" in e.value for e in at.error)
