"""AppTest runs of the Train and Performance pages, and of the trust warnings on Explain and Compare."""
import io
import json
import shutil

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers import APP, real_images, rerun_until

pytestmark = pytest.mark.usefixtures("fresh_caches")


def _page(name: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page(f"pages/{name}.py").run()
    return at


@pytest.fixture
def models_dir(tmp_path, monkeypatch, tiny_model_dir):
    d = tmp_path / "models"
    shutil.copytree(tiny_model_dir, d / tiny_model_dir.name)
    monkeypatch.setenv("XAI_MODELS_DIR", str(d))
    return d


def test_train_page_one_epoch_run_appears_in_every_model_list(models_dir):
    at = _page("train")
    assert not at.exception and not at.error
    assert at.number_input(key="train.shapes.epochs").value == 8  # the recipe's default
    at.selectbox(key="train.shapes.size").set_value(32).run()
    at.number_input(key="train.shapes.epochs").set_value(1).run()
    at.button(key="train.start").click().run()
    rerun_until(at, lambda a: bool(a.success) or bool(a.error))
    assert not at.error, [e.value for e in at.error]
    assert "Trained **shapes-small_cnn-2**" in at.success[0].value and "best epoch on val 1 of 1" in at.success[0].value
    assert (models_dir / "shapes-small_cnn-2" / "predictions.npz").is_file()
    assert len(at.get("plotly_chart")) >= 2  # loss and accuracy curves
    runs = at.dataframe[-1].value
    assert "shapes-small_cnn-2" in list(runs["model"])  # the tracked run is listed
    at.switch_page("pages/explain.py").run()
    assert any("shapes-small_cnn-2" in str(o) for o in at.selectbox(key="model").options)
    at.switch_page("pages/performance.py").run()
    assert any("shapes-small_cnn-2" in str(o) for o in at.multiselect(key="perf.models").options)


def test_train_page_cancel_keeps_nothing(models_dir):
    at = _page("train")
    at.selectbox(key="train.shapes.size").set_value(32).run()
    at.number_input(key="train.shapes.epochs").set_value(40).run()
    at.button(key="train.start").click().run()
    rerun_until(at, lambda a: any(b.key == "train.cancel" for b in a.button))
    at.button(key="train.cancel").click().run()
    rerun_until(at, lambda a: any("Cancelled" in i.value for i in a.info))
    assert any("nothing was saved" in i.value for i in at.info)
    assert sorted(p.name for p in models_dir.iterdir()) == ["shapes-small_cnn"]


def test_a_training_belongs_to_the_server_a_reload_sees_it_with_cancel_and_its_dataset(models_dir):
    """A training started in one session is seen by a new session (a browser reload, another tab) with its progress
    and Cancel, Train disabled, and the Dataset box on the job's dataset, also after leaving the page and coming
    back; Cancel there stops it for everyone."""
    first = _page("train")
    first.selectbox(key="train.dataset").set_value("shapes_spurious").run()
    first.selectbox(key="train.shapes_spurious.size").set_value(32).run()
    first.number_input(key="train.shapes_spurious.epochs").set_value(40).run()
    first.button(key="train.start").click().run()
    rerun_until(first, lambda a: any(b.key == "train.cancel" for b in a.button))
    reload = _page("train")  # a new session: nothing in its state
    assert not reload.exception and not reload.error
    assert reload.selectbox(key="train.dataset").value == "shapes_spurious"
    assert reload.number_input(key="train.shapes_spurious.epochs").value == 40  # the job's settings, not the recipe's
    assert reload.selectbox(key="train.shapes_spurious.size").value == 32
    assert any(b.key == "train.cancel" for b in reload.button)
    assert reload.button(key="train.start").disabled
    reload.switch_page("pages/explain.py").run()
    reload.switch_page("pages/train.py").run()
    assert reload.selectbox(key="train.dataset").value == "shapes_spurious"
    assert any(b.key == "train.cancel" for b in reload.button)
    reload.button(key="train.cancel").click().run()
    rerun_until(first, lambda a: any("Cancelled" in i.value for i in a.info))
    assert not first.button(key="train.start").disabled


def test_a_training_that_ends_while_the_page_draws_leaves_train_enabled(models_dir, monkeypatch):
    """The race CI met: the job ends after the page drew Train disabled (busy) and before it shows the outcome; the
    page draws itself again, so Train is enabled with "Cancelled" shown (no live part is left to redraw it)."""
    import ui.training

    first = _page("train")
    first.selectbox(key="train.shapes.size").set_value(32).run()
    first.number_input(key="train.shapes.epochs").set_value(40).run()
    first.button(key="train.start").click().run()
    rerun_until(first, lambda a: any(b.key == "train.cancel" for b in a.button))
    real = ui.training.follow

    def ends_first(job_key, prefix):  # the job is cancelled and ends between Train's drawing and the outcome
        import time

        from ui import jobs

        job = jobs.get(__import__("streamlit").session_state.get(job_key))
        if job is not None and job.running:
            job.cancel()
            deadline = time.time() + 60
            while job.running and time.time() < deadline:
                time.sleep(0.05)
        return real(job_key, prefix)

    monkeypatch.setattr(ui.training, "follow", ends_first)
    first.run()
    assert any("Cancelled" in i.value for i in first.info) and not first.button(key="train.start").disabled


def test_train_page_refuses_bad_settings_and_says_how_to_get_imagenet_weights(models_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_weights"))
    at = _page("train")
    at.selectbox(key="train.shapes.arch").set_value("resnet18").run()
    assert any("resnet18-f37072fd.pth" in c.value and "download.pytorch.org" in c.value for c in at.caption)
    at.text_input(key="train.shapes.weights.resnet18").set_value(str(tmp_path / "missing.pth")).run()
    at.button(key="train.start").click().run()
    assert not at.exception and any("does not exist" in e.value for e in at.error)
    at.text_input(key="train.shapes.id").set_value("../outside").run()
    at.text_input(key="train.shapes.weights.resnet18").set_value("").run()
    at.button(key="train.start").click().run()
    assert any("is not allowed" in e.value for e in at.error)


def test_train_page_settings_survive_switching_datasets(models_dir):
    at = _page("train")
    at.number_input(key="train.shapes.epochs").set_value(3).run()
    at.slider(key="train.shapes.rot").set_value(20).run()
    at.selectbox(key="train.dataset").set_value("pneumoniamnist").run()
    assert not at.exception
    at.selectbox(key="train.dataset").set_value("shapes").run()
    assert at.number_input(key="train.shapes.epochs").value == 3 and at.slider(key="train.shapes.rot").value == 20


def test_performance_page_numbers_curves_and_mistakes_to_explain(models_dir):
    at = _page("performance")
    assert not at.exception and not at.error
    card = json.loads((models_dir / "shapes-small_cnn" / "card.json").read_text())
    assert [m.label for m in at.metric] == ["Accuracy", "Balanced accuracy", "Macro F1", "ROC AUC", "ECE"]
    assert at.metric[0].value == f"{card['metrics']['accuracy']:.1%}"
    assert any("chance 25.0%" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) >= 5  # per class, confusion, reliability, ROC, PR
    at.toggle(key="perf.normalise").set_value(True).run()
    assert not at.exception
    explain = [b for b in at.button if b.key and b.key.startswith("perf.explain.")]
    assert explain, "no mistakes shown"
    index = int(explain[0].key.rsplit(".", 1)[1])
    explain[0].click().run()
    assert not at.exception and at.title[0].value == "Explain a prediction"
    assert at.number_input(key="image_index").value == index and at.selectbox(key="split").value == "test"
    assert any("True class:" in m.value for m in at.markdown)


def test_performance_page_two_models_side_by_side(models_dir, shapes_model_dir):
    shutil.copytree(shapes_model_dir, models_dir / "shapes-good")
    at = _page("performance")
    at.multiselect(key="perf.models").set_value([str(models_dir / "shapes-small_cnn"), str(models_dir / "shapes-good")]).run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table["model"]) == ["shapes-small_cnn", "shapes-good"] and "balanced accuracy" in table.columns
    at.selectbox(key="perf.detail").set_value(str(models_dir / "shapes-good")).run()
    assert not at.exception and at.header[0].value == "shapes-good"


def _near_chance_copy(models_dir):
    """The model's recorded test metrics (card and saved evaluation) say it is at chance."""
    for name in ("card.json", "metrics.json"):
        path = models_dir / "shapes-small_cnn" / name
        doc = json.loads(path.read_text())
        for c in doc["metrics"]["per_class"].values():
            c["recall"] = 0.26
        doc["metrics"]["balanced_accuracy"] = 0.26
        path.write_text(json.dumps(doc))


@pytest.mark.parametrize("page", ["explain", "compare", "performance", "quality"])
def test_a_near_chance_model_is_flagged_on_every_page_that_predicts(models_dir, page):
    _near_chance_copy(models_dir)
    at = _page(page)
    assert not at.exception
    assert any("near chance level" in w.value and "26.0%" in w.value for w in at.warning), [w.value for w in at.warning]
    # one box with every reason (near chance, and each class rarely recognised), not a box per reason
    boxes = [w.value for w in at.warning if "Do not trust" in w.value]
    assert len(boxes) == 1 and boxes[0].count("rarely recognised") == 4, boxes


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


def test_explain_warns_on_an_upload_unlike_the_training_images(tmp_path, monkeypatch, shapes_model_dir):
    d = tmp_path / "models"
    shutil.copytree(shapes_model_dir, d / "shapes-good")
    monkeypatch.setenv("XAI_MODELS_DIR", str(d))
    at = _page("explain")
    at.radio(key="image_source").set_value("Upload").run()
    photo = real_images("dogs_vs_wolves")[0]
    at.file_uploader(key="upload").set_value((photo.name, photo.read_bytes(), "image/jpeg")).run()
    assert not at.exception
    assert any("unlike the images the model was trained on" in w.value for w in at.warning)
    from core import load_dataset

    shape = load_dataset("shapes", "test", size=32).image(0)
    at.file_uploader(key="upload").set_value(("shape.png", _png(shape), "image/png")).run()
    assert not any("unlike the images" in w.value for w in at.warning)
    assert any("like the training images" in c.value for c in at.caption)


def test_train_page_on_a_folder_dataset_names_its_classes_and_split_sizes_with_defaults_that_fit(models_dir, tmp_path):
    """A folder's classes come from its files (the registry has none), its default size fits the default
    architecture (no size warning from the page's own defaults), and a tiny validation split is said."""
    from tests.helpers import make_tree

    tree = make_tree(tmp_path / "pets", split_layout=False)
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.session_state["data_roots"] = {"folder": str(tree)}
    at.switch_page("pages/train.py").run()
    at.selectbox(key="train.dataset").set_value("folder").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    captions = [c.value for c in at.caption]
    assert not any("is meant for" in c for c in captions), captions
    per_class = next(c for c in captions if c.startswith("Training images per class:"))
    assert "cats " in per_class and "dogs " in per_class
    sizes = next(c for c in captions if c.startswith("Images: train "))
    assert "validation images: the best epoch is chosen on them" in sizes


def test_performance_models_box_follows_a_dataset_switch(models_dir):
    """Switching the dataset shows that dataset's newest model in the Models box (it was left empty)."""
    other = models_dir / "spurious-copy"
    shutil.copytree(next(models_dir.iterdir()), other)
    card = json.loads((other / "card.json").read_text())
    card.update(id="spurious-copy", dataset="shapes_spurious")
    (other / "card.json").write_text(json.dumps(card))
    at = _page("performance")
    assert at.multiselect(key="perf.models").value == [str(models_dir / "shapes-small_cnn")]
    at.selectbox(key="perf.dataset").set_value("shapes_spurious").run()
    assert not at.exception
    assert at.multiselect(key="perf.models").value == [str(other)]
    at.selectbox(key="perf.dataset").set_value("shapes").run()
    assert at.multiselect(key="perf.models").value == [str(models_dir / "shapes-small_cnn")]
