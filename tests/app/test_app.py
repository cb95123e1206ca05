"""AppTest runs of every page with a tiny model."""
import json
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from core import get_method

from tests.helpers import APP, ROOT, rerun_until


pytestmark = pytest.mark.usefixtures("fresh_caches")


def _run_explain(at: AppTest | None = None) -> AppTest:
    at = at or AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/explain.py").run()
    return at


def _label_start(method: str) -> str:
    """How a map's caption starts: "Grad-CAM → class", or "Eigen-CAM (the same map for every class)"."""
    cls = get_method(method)
    return cls.title + (" →" if cls.class_specific else " (the same map for every class)")


def _map_captions(at: AppTest) -> list[str]:
    titles = {get_method(m).title for m in ("grad_cam", "integrated_gradients", "saliency")}
    caps = [im.proto.imgs[0].caption for im in at.get("image") if im.proto.imgs]
    return [c for c in caps if c.split(" → ")[0] in titles]


def test_home_page(tiny_model_dir):
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "Grad-CAM" in text and "shapes-small_cnn" in text
    from ui.router import PAGES

    linked = {el.proto.page for el in at.get("page_link")}
    assert linked == {path[6:-3] for path, *_ in PAGES if path != "pages/home.py"}, linked  # Quality and Dataset too


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
    # it trains in the background (the server's job runner): progress and Cancel meanwhile, the maps once done
    assert any(b.key == "explain.train.cancel" for b in at.button) or _map_captions(at)
    rerun_until(at, lambda a: len(_map_captions(a)) == 3 or bool(a.error))
    assert not at.error, [e.value for e in at.error]
    assert (tmp_path / "empty_models" / "shapes-small_cnn" / "card.json").is_file()


def test_corrupt_model_gives_a_message_not_a_traceback(tiny_model_dir, tmp_path, monkeypatch):
    models = tmp_path / "models"
    shutil.copytree(tiny_model_dir, models / "broken")
    (models / "broken" / "weights.pt").write_bytes(b"rubbish")
    monkeypatch.setenv("XAI_MODELS_DIR", str(models))
    at = _run_explain()
    assert not at.exception
    assert any("SHA-256" in e.value for e in at.error)


def test_compare_page_three_methods_two_images(tiny_model_dir, monkeypatch):
    import core

    calls = []
    real = core.explain_batch

    def counting(*a, **k):
        calls.append((a[2], len(a[1])))  # (method, images in the batch)
        return real(*a, **k)

    monkeypatch.setattr(core, "explain_batch", counting)
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    at.multiselect(key="cmp_indices").set_value([3, 4]).run()
    at.multiselect(key="cmp_methods").set_value(["grad_cam", "integrated_gradients", "lime"]).run()
    at.number_input(key="param.lime.max_samples").set_value(100).run()
    assert not at.exception and not at.error
    caps = [im.proto.imgs[0].caption for im in at.get("image") if im.proto.imgs]
    cells = [c for c in caps if " → " in c]
    assert len(cells) == 6 and sum(c.startswith("LIME") for c in cells) == 2
    assert sum(c.startswith("#") for c in caps) == 2  # the originals in the first column
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert any(c["data"][0]["type"] == "heatmap" for c in charts)  # method agreement
    assert len(at.get("download_button")) == 2
    n = len(calls)
    # display controls only redraw
    at.radio(key="cmp_colours").set_value("Signed").run()
    at.radio(key="cmp_scale").set_value("Shared").run()
    at.slider(key="cmp_topk").set_value(20).run()
    at.slider(key="cmp_alpha").set_value(0.3).run()
    assert not at.exception and len(calls) == n
    # every computation was one batched engine call for the grid's two images
    assert calls and all(k == 2 for _, k in calls)
    # a parameter change recomputes just that method, both images in one call
    at.number_input(key="param.integrated_gradients.n_steps").set_value(16).run()
    assert calls[n:] == [("integrated_gradients", 2)]
    # a new image computes only its own cells; the others come from the shared store
    at.multiselect(key="cmp_indices").set_value([3, 4, 5]).run()
    assert not at.exception and sorted(calls[n + 1:]) == [("grad_cam", 1), ("integrated_gradients", 1), ("lime", 1)]


def test_compare_page_misclassified_and_random(tiny_model_dir):
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page("pages/compare.py").run()
    at.multiselect(key="cmp_methods").set_value(["saliency"]).run()
    at.radio(key="cmp_mode").set_value("Misclassified only").run()
    assert not at.exception
    assert any("misclassified" in c.value for c in at.caption)
    caps = [im.proto.imgs[0].caption for im in at.get("image") if im.proto.imgs]
    # every original shown is misclassified: its saliency target (predicted) differs from its true class
    cells = [c for c in caps if c.startswith("Saliency")]
    originals = [c for c in caps if c.startswith("#")]
    assert len(cells) == len(originals) == 3
    for o, c in zip(originals, cells):
        assert o.split("true ")[1].split(" · ")[0] != c.split(" → ")[1].split(" · ")[0] and o.endswith("wrong")
    at.radio(key="cmp_mode").set_value("Random").run()
    at.number_input(key="cmp_seed").set_value(5).run()
    assert not at.exception and not at.error


def _png_bytes(size=(90, 60), color=(200, 30, 30), mode="RGB") -> bytes:
    import io

    from PIL import Image

    import numpy as np

    buf = io.BytesIO()
    img = Image.new(mode, size, color)
    ramp = Image.fromarray(np.tile(np.linspace(0, 255, size[0]).astype(np.uint8), (size[1], 1)))
    img.paste(ramp.convert(mode), (0, 0), ramp.point(lambda v: 128))  # a real picture, not one flat colour
    img.save(buf, "PNG")
    return buf.getvalue()


def test_explain_page_upload(tiny_model_dir):
    at = _run_explain()
    at.radio(key="image_source").set_value("Upload").run()
    assert not at.exception and any("Upload an image" in i.value for i in at.info)
    at.file_uploader(key="upload").set_value(("photo.png", _png_bytes((90, 60)), "image/png")).run()
    assert not at.exception and not at.error
    assert any("Uploaded image" in m.value for m in at.markdown)
    assert any("photo.png: 90x60 RGB → 64x64" in c.value for c in at.caption)
    assert len(_map_captions(at)) == 3
    # a bad file: one line naming it, no traceback, the page still works
    at.file_uploader(key="upload").set_value(("broken.jpg", b"\xff\xd8\xff not really a jpeg", "image/jpeg")).run()
    assert not at.exception
    assert [e.value for e in at.error] and all(e.value.startswith("broken.jpg: ") for e in at.error)
    assert "\n" not in at.error[0].value
    # one flat colour (what a corrupt body can decode to): refused in one line, not explained
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (50, 40), (128, 128, 128)).save(buf, "PNG")
    at.file_uploader(key="upload").set_value(("flat.png", buf.getvalue(), "image/png")).run()
    assert not at.exception and any(e.value.startswith("flat.png: ") and "flat value" in e.value for e in at.error)
    assert not _map_captions(at)


def test_data_page_shows_every_dataset_and_the_shapes_details(tiny_model_dir):
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/data.py").run()
    assert not at.exception
    df = at.table[0].value  # a static table: long instructions wrap rather than being cut
    assert set(df["name"]) >= {"shapes", "pathmnist", "pneumoniamnist", "chest_xray", "dogs_vs_wolves", "insects", "folder"}
    assert df.set_index("name").loc["shapes", "state"] == "ready"
    assert df.set_index("name").loc["pathmnist", "state"] == "needs download"
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["name"] for t in spec["data"]] == ["train", "val", "test"]
    assert [sum(t["y"]) for t in spec["data"]] == [4000, 500, 1000]
    captions = [im.proto.imgs[0].caption for im in at.get("image") if im.proto.imgs]
    assert len(captions) == 4 * 6  # six samples for each of the four classes


def test_data_page_missing_dataset_and_folder_path(tiny_model_dir, tmp_path):
    from tests.helpers import make_tree

    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/data.py").run()
    at.selectbox(key="data_dataset").set_value("pneumoniamnist").run()
    assert not at.exception
    assert any("pneumoniamnist_64.npz" in w.value for w in at.warning)
    assert at.button(key="download") is not None  # a real download button, with a size choice
    at.selectbox(key="data_dataset").set_value("folder").run()
    tree = make_tree(tmp_path / "pets", split_layout=False)
    at.button(key="FormSubmitter:data_path_form-Use this folder").click().run()
    assert any("Type the path" in e.value for e in at.error)  # an empty path is refused, not read as "."
    at.text_input(key="data_path").set_value(str(tree))
    at.button(key="FormSubmitter:data_path_form-Use this folder").click().run()
    assert not at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["data"][0]["x"] == ["cats", "dogs"]
    assert any("files skipped" in e.label for e in at.expander)
    # the mode counts are totals over every split, and say so
    import re

    text = next(m.value for m in at.markdown if "Source files:" in m.value)
    total = int(re.search(r"Source files: (\d+) in all splits", text).group(1))
    assert total == sum(sum(t["y"]) for t in spec["data"])
    assert sum(int(n) for n in re.findall(r"(\d+) of \d+", text)) == total


def test_data_page_download_failure_is_one_clear_message(tiny_model_dir, monkeypatch):
    import core.datasets.download as dl

    monkeypatch.setattr(dl, "TIMEOUT_S", 2)
    monkeypatch.setattr("core.datasets.medmnist_source.MedMNISTSource.url_md5",
                        lambda self, size: ("http://127.0.0.1:9/pneumoniamnist_64.npz", "0" * 32))
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/data.py").run()
    at.selectbox(key="data_dataset").set_value("pneumoniamnist").run()
    at.button(key="download").click().run()
    assert not at.exception
    assert any("Could not download pneumoniamnist_64.npz" in e.value and "put it at" in e.value for e in at.error)


def test_model_trained_from_a_data_dir_is_explained_from_its_recorded_folder(tiny_model_dir, isolated_dirs):
    """A 1-channel PneumoniaMNIST model trained with --data-dir: the UI finds the data through the card."""
    from core.modelling.training import TrainConfig, train
    from tests.helpers import SHARED_DATA

    if not (SHARED_DATA / "pneumoniamnist.npz").is_file():
        pytest.skip(f"real PneumoniaMNIST file not found at {SHARED_DATA}")
    train(TrainConfig(dataset="pneumoniamnist", data_root=str(SHARED_DATA), epochs=1,
                      model_id="pneumo-test"), None, isolated_dirs["models"])
    at = _run_explain()
    at.selectbox(key="dataset").set_value("pneumoniamnist").run()
    assert not at.exception and not at.error
    assert any("True class:" in m.value for m in at.markdown)
    caps = _map_captions(at)
    assert len(caps) == 3 and all(c.split(" → ")[1].split(" · ")[0] in ("normal", "pneumonia") for c in caps)


def test_shap_warm_up_runs_once_in_the_background():
    from ui import cache

    thread = cache.warm_up_in_background()
    assert cache.warm_up_in_background() is thread  # one per server process, not per page run
    thread.join(120)
    assert not thread.is_alive()


def test_result_store_is_lru_and_read_only():
    import numpy as np

    from core import Explanation
    from ui.cache import ResultStore

    def e(v: float) -> Explanation:
        a = np.full((2, 2), v, dtype=np.float32)
        return Explanation("saliency", "Saliency", a, a.copy(), 0, {}, 0.1, False)

    store = ResultStore(max_entries=2)
    store.put(("a",), e(1))
    store.put(("b",), e(2))
    assert store.get(("a",)) is not None  # "a" is now the most recently used
    store.put(("c",), e(3))
    assert store.get(("b",)) is None and store.get(("a",)) is not None and len(store) == 2
    with pytest.raises(ValueError):
        store.get(("c",)).attribution[0, 0] = 5  # shared by every session: nobody changes it in place


def test_typed_data_folder_survives_reruns_and_trains(tiny_model_dir, tmp_path, monkeypatch):
    """Explain: pick PneumoniaMNIST, type the folder of a local npz, use it, then change anything: the dataset
    stays selected, its label says ready, and "Train a model" trains on it."""
    from tests.helpers import write_npz

    monkeypatch.setenv("XAI_MODELS_DIR", str(tmp_path / "models"))  # no other test's PneumoniaMNIST model

    folder = tmp_path / "npz"
    folder.mkdir()
    write_npz(folder / "pneumoniamnist.npz", 28, rgb=False, n=(40, 8, 8))
    at = _run_explain()
    at.selectbox(key="dataset").set_value("pneumoniamnist").run()
    at.text_input(key="data_path").set_value(str(folder))
    at.button(key="FormSubmitter:data_path_form-Use this folder").click().run()
    assert not at.exception and at.selectbox(key="dataset").value == "pneumoniamnist"
    assert any("ready" in c.value for c in at.caption) and not any("needs" in c.value for c in at.caption)
    at.number_input(key="train_epochs").set_value(1).run()
    assert at.selectbox(key="dataset").value == "pneumoniamnist"
    at.button(key="train").click().run()
    assert not at.exception and not at.error
    rerun_until(at, lambda a: any(s.key == "model" for s in a.selectbox) or bool(a.error))
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="dataset").value == "pneumoniamnist"
    assert any("pneumoniamnist" in str(o) for o in at.selectbox(key="model").options)

    def states_on_data_page() -> dict:
        fresh = AppTest.from_file(APP, default_timeout=120).run()  # a new browser session
        fresh.switch_page("pages/data.py").run()
        return dict(zip(fresh.table[0].value["name"], fresh.table[0].value["state"]))

    # a new session (and a restart: nothing but files) remembers the folder ...
    assert states_on_data_page()["pneumoniamnist"] == "ready"
    # ... and without the settings file, the folder recorded in the trained model's card still counts
    from core import settings

    settings.settings_path().unlink()
    assert states_on_data_page()["pneumoniamnist"] == "ready"


def test_typing_the_npz_file_itself_uses_its_folder(tiny_model_dir, tmp_path, monkeypatch):
    from core import settings

    monkeypatch.setenv("XAI_MODELS_DIR", str(tmp_path / "models"))  # no model records a PathMNIST folder
    from tests.helpers import write_npz

    npz = write_npz(tmp_path / "f" / "pathmnist.npz", 28, rgb=True, classes=9, n=(18, 9, 9))
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("pages/data.py").run()
    at.selectbox(key="data_dataset").set_value("pathmnist").run()
    at.text_input(key="data_path").set_value(str(npz))
    at.button(key="FormSubmitter:data_path_form-Use this folder").click().run()
    assert not at.exception and not at.error
    assert settings.dataset_roots()["pathmnist"] == str(npz.parent.resolve())
    assert at.get("plotly_chart")  # the class distribution of the file's splits
    # a folder without the file is refused with what is missing, and nothing is remembered for it
    settings.settings_path().unlink()
    (tmp_path / "empty").mkdir()
    other = AppTest.from_file(APP, default_timeout=120).run()
    other.switch_page("pages/data.py").run()
    other.selectbox(key="data_dataset").set_value("pathmnist").run()
    other.text_input(key="data_path").set_value(str(tmp_path / "empty"))
    other.button(key="FormSubmitter:data_path_form-Use this folder").click().run()
    assert any("pathmnist" in e.value for e in other.error) and settings.dataset_roots() == {}


#: the fastest settings of the slow methods, so one AppTest per method stays quick
QUICK = {"lime": {"max_samples": 100, "round_size": 50}, "shap_partition": {"max_evals": 40}, "integrated_gradients": {"n_steps": 8},
         "score_cam": {"batch_size": 128}, "ablation_cam": {"batch_size": 128}, "occlusion": {"window": 16, "stride": 16}}


def _quick(at: AppTest, methods) -> None:
    for m in methods:
        for name, value in QUICK.get(m, {}).items():
            at.number_input(key=f"param.{m}.{name}").set_value(value)


@pytest.mark.parametrize("method", core_methods := __import__("core").list_methods())
def test_every_method_alone_on_explain_and_compare(tiny_model_dir, method):
    """The whole class of "one method crashes a page": each registered method, alone, on both pages (a method that
    does not apply to the model is not offered, and the page says why)."""
    at = _run_explain()
    why = get_method(method).unavailable(__import__("core").load_model(tiny_model_dir)[0])
    if why is not None:
        assert get_method(method).title not in at.multiselect(key="methods").options
        assert any(why in md.value for md in at.markdown), why
        return
    at.multiselect(key="methods").set_value([method]).run()
    _quick(at, [method])
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    caps = [im.proto.imgs[0].caption for im in at.get("image") if im.proto.imgs]
    assert sum(c.startswith(_label_start(method)) for c in caps) == 1
    assert _drawn_rules(at, method) == [_declared_rule(tiny_model_dir, method, "auto")]  # the face test: Explain
    at.switch_page("pages/compare.py").run()
    at.multiselect(key="cmp_indices").set_value([1]).run()
    at.multiselect(key="cmp_methods").set_value([method]).run()
    _quick(at, [method])
    at.run()
    assert not at.exception and not at.error
    caps = [im.proto.imgs[0].caption for im in at.get("image") if im.proto.imgs]
    assert sum(c.startswith(_label_start(method)) for c in caps) == 1
    assert _drawn_rules(at, method) == [_declared_rule(tiny_model_dir, method, "auto")]  # and Compare


def _declared_rule(model_dir, method: str, choice: str) -> str:
    """The rule a map of ``method`` must be drawn in: its declared one (or the user's choice) for its default settings."""
    import core
    from core.explainers import resolve_params
    from core.present.render import map_view

    cls = get_method(method)
    return map_view(cls.view, cls.signed_for(resolve_params(method, core.load_model(model_dir)[0])), choice)


def _drawn_rules(at: AppTest, method: str) -> list[str]:
    """The rule each map of ``method`` says it is drawn in (its caption), checked against its colour bar's rule."""
    caps = [im.proto.imgs[0].caption for im in at.get("image") if im.proto.imgs]
    said = [c.rsplit(" · ", 1)[1] for c in caps if c.startswith(_label_start(method))]
    bars = [m.value.split('data-rule="')[1].split('"')[0] for m in at.markdown if 'class="xai-colour-bar"' in m.value]
    assert set(said) <= set(bars), (said, bars)  # each tile's bar is its rule's
    return said


def test_all_methods_at_once_on_explain(tiny_model_dir):
    import core

    at = _run_explain()
    offered = core.list_methods(core.load_model(tiny_model_dir)[0])
    at.multiselect(key="methods").set_value(offered).run()
    _quick(at, offered)
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    caps = [im.proto.imgs[0].caption for im in at.get("image") if im.proto.imgs]
    for m in offered:
        assert sum(c.startswith(_label_start(m)) for c in caps) == 1, m
    for label, choice in (("Signed", "signed"), ("Magnitude", "magnitude")):  # the user's choice, where it applies
        at.radio(key="colours").set_value(label).run()
        for m in offered:
            assert _drawn_rules(at, m) == [_declared_rule(tiny_model_dir, m, choice)], (m, choice)


@pytest.mark.parametrize("page", ["pages/home.py", "pages/explain.py", "pages/compare.py", "pages/data.py"])
def test_an_unexpected_exception_is_one_line_not_a_traceback(tiny_model_dir, monkeypatch, page):
    import core
    import ui.data_panel

    def boom(*a, **k):
        raise RuntimeError("internal detail that must not reach the page")

    # every page calls one of these early
    for target, name in ((core, "predict"), (core, "predict_proba"), (core, "list_models"), (ui.data_panel, "status")):
        monkeypatch.setattr(target, name, boom)
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page(page).run()
    assert not at.exception
    assert len(at.error) == 1 and "Something went wrong" in at.error[0].value and "RuntimeError" in at.error[0].value
    assert "internal detail" not in at.error[0].value


def test_demo_settings_hide_the_toolbar_and_tracebacks():
    import tomllib

    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["client"]["toolbarMode"] == "viewer" and cfg["client"]["showErrorDetails"] == "none"


def test_explain_views_signed_lime_and_ground_truth(tiny_model_dir):
    """Signed colours, the LIME superpixel picture with its weight list, the object outline, rows that fill the width
    (at most four tiles, each with its colour bar), and only the chosen segmentation's LIME parameters."""
    at = _run_explain()
    at.multiselect(key="methods").set_value(["grad_cam", "integrated_gradients", "lime", "saliency", "occlusion",
                                             "input_x_gradient", "deeplift"]).run()
    _quick(at, ["lime", "integrated_gradients", "occlusion"])
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.radio(key="colours").value == "Per method"
    caps = [im.proto.imgs[0].caption for im in at.get("image") if im.proto.imgs]
    assert any(c.startswith("LIME superpixels") and "(red for, blue against)" in c for c in caps)
    # each map in its own colour rule, said on the tile, and the rules stated once beside the maps
    rule = {c.split(" →")[0]: c.rsplit(" · ", 1)[1] for c in caps if " · " in c}
    assert rule["Integrated Gradients"] == rule["DeepLIFT"] == rule["Grad-CAM"] == "magnitude"
    assert rule["LIME"] == rule["Occlusion"] == "signed"
    assert sum("Red-blue maps: red for the class, blue against it" in c.value and "Dark-to-yellow maps" in c.value
               for c in at.caption) == 1
    at.radio(key="colours").set_value("Signed").run()
    caps = [im.proto.imgs[0].caption for im in at.get("image") if im.proto.imgs]
    rule = {c.split(" →")[0]: c.rsplit(" · ", 1)[1] for c in caps if " · " in c}
    assert rule["Integrated Gradients"] == "signed" and rule["Grad-CAM"] == "magnitude"  # unsigned: magnitude
    assert any("superpixels with the largest" in e.label for e in at.expander)
    at.number_input(key="lime_shown").set_value(3).run()
    table = at.dataframe[-1].value
    assert len(table) == 3 and list(table.columns) == ["superpixel", "weight", "± (95 % credible)", "effect"]
    assert (table["± (95 % credible)"] > 0).all()
    assert list(table["weight"].abs()) == sorted(table["weight"].abs(), reverse=True)
    at.toggle(key="show_mask").set_value(True).run()
    assert not at.exception
    # rows that fill the width: 1 original + 7 maps + the LIME picture = 9 tiles in three even rows of 3 columns
    widths = _tile_rows(at)
    assert any(widths[k:k + 3] == [3, 3, 3] for k in range(len(widths)))  # (the gallery's row has its own 8)
    bars = [m.value for m in at.markdown if 'class="xai-colour-bar"' in m.value]
    assert len(bars) == 8 and all('alt="Colour bar, ' in b for b in bars)  # one under each map and the LIME picture
    # LIME shows only its segmentation's parameters
    keys = {w.key for w in at.number_input}
    assert "param.lime.n_segments" in keys and "param.lime.kernel_size" not in keys
    at.selectbox(key="param.lime.segmentation").set_value("quickshift").run()
    keys = {w.key for w in at.number_input}
    assert "param.lime.kernel_size" in keys and "param.lime.n_segments" not in keys and not at.exception


def _tile_rows(at: AppTest) -> list[int]:
    """The number of columns in each row of columns of the main area, top to bottom."""
    def blocks(node):
        for child in getattr(node, "children", {}).values():
            yield child
            yield from blocks(child)

    return [len(b.children) for b in blocks(at.main) if getattr(b, "type", None) == "flex_container"
            and any(getattr(c, "type", None) == "column" for c in b.children.values())]


def _joined(rows: list[int]) -> str:
    return "".join(f"{n}," for n in rows)


def test_presentation_mode_hides_the_controls_and_shows_large_titled_maps(tiny_model_dir):
    """Presentation mode: the sidebar hidden (its controls keep their values), no gallery, three tiles a row with the
    method and class as a large title above each map and its colour bar under it; off again, the page is as before."""
    at = _run_explain()
    chosen = ["grad_cam", "saliency", "integrated_gradients", "gradient_shap", "input_x_gradient", "deeplift"]
    at.multiselect(key="methods").set_value(chosen).run()
    before = _tile_rows(at)
    assert "4,4," in _joined(before) and any("Gallery" in e.label for e in at.expander)  # seven tiles: two rows of 4
    at.toggle(key="presentation_mode").set_value(True).run()
    assert not at.exception and not at.error
    css = [m.value for m in at.markdown if 'data-testid="stSidebar"' in m.value]
    assert len(css) == 1 and "display: none" in css[0]
    assert not any("Gallery" in e.label for e in at.expander)
    assert "3,3,3," in _joined(_tile_rows(at))  # the original and six maps, three a row
    titles = [m.value[4:] for m in at.markdown if m.value.startswith("### ")]
    assert titles[0] == "Original" and [t.split(" →")[0] for t in titles[1:]] == [
        "Grad-CAM", "Saliency", "Integrated Gradients", "GradientSHAP", "Input × Gradient", "DeepLIFT"], titles
    assert all(" s" not in t for t in titles)  # a title a room reads: no timing, the rule is on the bar
    assert len([m for m in at.markdown if 'class="xai-colour-bar"' in m.value]) == 6
    warned = [w.value for w in at.warning if "Do not trust" in w.value]  # the tiny model is flagged: still said,
    assert len(warned) == 1 and "more reason(s)" in warned[0] and "\n-" not in warned[0]  # in one line
    assert at.multiselect(key="methods").value == chosen
    at.toggle(key="presentation_mode").set_value(False).run()
    assert any("Do not trust" in w.value and "\n-" in w.value for w in at.warning)  # every reason again
    assert _tile_rows(at) == before and not [m for m in at.markdown if 'data-testid="stSidebar"' in m.value]


def test_explain_lime_says_how_stable_it_is_and_more_samples_recomputes_it(tiny_model_dir):
    """LIME's caption gives its samples and predicted run-to-run agreement; a map that is not yet stable offers a
    button that raises the samples to what its stability predicts, and the map is computed again with them. The
    fixed count is one choice away and reports the same numbers."""
    at = _run_explain()
    at.multiselect(key="methods").set_value(["lime"]).run()
    assert at.selectbox(key="param.lime.mode").value == "adaptive"
    at.number_input(key="param.lime.max_samples").set_value(100)
    at.number_input(key="param.lime.round_size").set_value(50)
    at.number_input(key="param.lime.stability_target").set_value(0.99).run()  # so strict that 100 samples cannot reach it
    assert not at.exception and not at.error
    notes = [c.value for c in at.caption if "another run would agree" in c.value]
    assert notes and "100 samples (adaptive, stopped at its maximum" in notes[0] and "not yet stable" in notes[0]
    more = at.button(key="more_samples.lime")
    more.click().run()
    assert not at.exception
    raised = at.number_input(key="param.lime.max_samples").value
    assert raised >= 200
    assert any(f"{raised:,} samples" in c.value or "(adaptive, stable)" in c.value for c in at.caption)
    at.selectbox(key="param.lime.mode").set_value("fixed").run()
    at.number_input(key="param.lime.num_samples").set_value(60).run()
    assert any("60 samples (fixed count)" in c.value for c in at.caption) and not at.exception


def test_explain_exports_figure_and_report_with_provenance(tiny_model_dir):
    """The page offers both exports (their content is tested in test_report.py)."""
    at = _run_explain()
    at.multiselect(key="methods").set_value(["grad_cam", "lime"]).run()
    _quick(at, ["lime"])
    at.run()
    assert not at.exception
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download figure (PNG)" in labels and "Download report (HTML)" in labels


def test_compare_rows_say_right_or_wrong_and_shared_scale_stays_within_units(tiny_model_dir):
    from core import get_method, load_dataset, load_model, predict

    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page("pages/compare.py").run()
    at.multiselect(key="cmp_indices").set_value([0, 1, 2]).run()
    at.multiselect(key="cmp_methods").set_value(["grad_cam", "saliency", "integrated_gradients"]).run()
    at.number_input(key="param.integrated_gradients.n_steps").set_value(8).run()
    at.radio(key="cmp_scale").set_value("Shared").run()
    assert not at.exception and not at.error
    model, card = load_model(tiny_model_dir)
    ds = load_dataset("shapes", split="test")
    originals = [im.proto.imgs[0].caption for im in at.get("image") if im.proto.imgs and im.proto.imgs[0].caption.startswith("#")]
    for i, cap in zip([0, 1, 2], originals):
        pred, true = int(predict(model, ds[i][0]).argmax()), int(ds.labels[i])
        assert f"true {card.classes[true]}" in cap and f"predicted {card.classes[pred]}" in cap
        assert cap.endswith("right" if pred == true else "wrong")
    note = next(c.value for c in at.caption if "Shared scale" in c.value)
    import re

    for unit, title in (("relative", "Grad-CAM"), ("gradient", "Saliency"), ("logit", "Integrated Gradients")):
        assert re.search(rf"{unit} at ±[0-9.e-]+: {title}", note), note  # each shared range said
    assert get_method("lime").units == "probability" and get_method("smoothgrad").units_for({"base": "saliency"}) == "gradient"


def test_explain_cancel_keeps_what_is_done_and_resumes(tiny_model_dir, monkeypatch):
    """A cancelled request computes nothing more and keeps the maps already computed; "Compute the rest"
    finishes it. A chosen slow method is named under the parameters, with its measured estimate."""
    from core import load_dataset, load_model, predict
    from core.explainers import resolve_params
    from ui.cache import image_digest
    from ui.compute import request_key

    at = _run_explain()
    at.multiselect(key="methods").set_value(["grad_cam"]).run()
    assert not any("Slow on this model" in c.value for c in at.sidebar.caption)
    model, card = load_model(tiny_model_dir)
    x = load_dataset("shapes", split="test")[0][0]
    params = {"grad_cam": resolve_params("grad_cam", model), "lime": resolve_params("lime", model)}
    # the user pressed Cancel while this request (Grad-CAM known, LIME to compute) was running
    at.session_state["cancelled_request"] = request_key(card.weights_sha256, image_digest(x.numpy()),
                                                        ["grad_cam", "lime"], params, [int(predict(model, x).argmax())])
    monkeypatch.setattr("ui.pickers.SLOW_SECONDS", 1e-6)  # slow on any machine: the note's presence, not a speed
    at.multiselect(key="methods").set_value(["grad_cam", "lime"]).run()
    assert not at.exception
    assert any("Slow on this model" in c.value and "LIME ~" in c.value for c in at.sidebar.caption)
    assert any("Cancelled" in i.value and "LIME" in i.value for i in at.info)
    caps = [im.proto.imgs[0].caption for im in at.get("image") if im.proto.imgs]
    assert sum(c.startswith("Grad-CAM →") for c in caps) == 1 and not any(c.startswith("LIME →") for c in caps)
    at.button(key="resume").click().run()
    caps = [im.proto.imgs[0].caption for im in at.get("image") if im.proto.imgs]
    assert sum(c.startswith("LIME →") for c in caps) == 1 and not at.info


def test_compare_true_vs_predicted_recomputes_only_cells_that_differ(tiny_model_dir, monkeypatch):
    import core
    from core import load_dataset, load_model, predict

    calls = []
    real = core.explain_batch

    def counting(*a, **k):
        calls.append((a[2], len(a[1])))
        return real(*a, **k)

    monkeypatch.setattr(core, "explain_batch", counting)
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page("pages/compare.py").run()
    at.multiselect(key="cmp_indices").set_value([0, 1, 2, 3, 4, 5]).run()
    at.multiselect(key="cmp_methods").set_value(["saliency"]).run()
    model, _ = load_model(tiny_model_dir)
    ds = load_dataset("shapes", split="test")
    differ = sum(int(predict(model, ds[i][0]).argmax()) != int(ds.labels[i]) for i in range(6))
    n = len(calls)
    at.radio(key="cmp_target").set_value("True").run()
    assert not at.exception
    assert calls[n:] == ([("saliency", differ)] if differ else [])


def test_compare_cancel_keeps_computed_cells(tiny_model_dir):
    from core import load_dataset, load_model, predict_proba
    from core.explainers import resolve_params
    from ui.cache import image_digest
    from ui.compute import request_key

    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page("pages/compare.py").run()
    at.multiselect(key="cmp_indices").set_value([0, 1]).run()
    at.multiselect(key="cmp_methods").set_value(["saliency"]).run()
    model, card = load_model(tiny_model_dir)
    import numpy as np

    x = load_dataset("shapes", split="test").batch(np.arange(2))
    targets = predict_proba(model, x).argmax(axis=1).tolist()
    methods = ["saliency", "occlusion"]  # not among the page's defaults, so not computed yet
    params = {m: resolve_params(m, model) for m in methods}
    at.session_state["cmp_cancelled_request"] = request_key(
        card.weights_sha256, ",".join(image_digest(a) for a in x.numpy()), methods, params, targets)
    at.multiselect(key="cmp_methods").set_value(methods).run()
    assert not at.exception
    assert any("Cancelled: 2 cells not computed" in i.value for i in at.info)
    caps = [im.proto.imgs[0].caption for im in at.get("image") if im.proto.imgs]
    assert sum(c.startswith("Saliency →") for c in caps) == 2 and not any(c.startswith("Occlusion →") for c in caps)
    at.button(key="cmp_resume").click().run()
    caps = [im.proto.imgs[0].caption for im in at.get("image") if im.proto.imgs]
    assert sum(c.startswith("Occlusion →") for c in caps) == 2


def test_broken_models_are_shown_with_the_reason(tiny_model_dir, tmp_path, monkeypatch):
    """A model whose card is not valid JSON used to vanish from the pickers ("No trained model ... Train one")."""
    models = tmp_path / "models"
    shutil.copytree(tiny_model_dir, models / tiny_model_dir.name)
    (models / "damaged").mkdir()
    (models / "damaged" / "card.json").write_text("{not json")
    monkeypatch.setenv("XAI_MODELS_DIR", str(models))
    at = _run_explain()
    assert not at.exception
    broken = [e for e in at.expander if "cannot be used" in e.label]
    assert broken and any("damaged" in m.value and "not valid JSON" in m.value for m in broken[0].markdown)
    assert any(str(o).startswith("shapes-small_cnn") for o in at.selectbox(key="model").options)


def test_chosen_methods_survive_the_upload_view_and_a_failed_upload(tiny_model_dir):
    """The methods picker is not drawn while the Upload view has no image (or a failed one): the choice is kept."""
    at = _run_explain()
    at.multiselect(key="methods").set_value(["grad_cam", "saliency"]).run()
    at.radio(key="image_source").set_value("Upload").run()
    assert not at.exception and not any(m.key == "methods" for m in at.multiselect)  # not drawn: no image yet
    at.file_uploader(key="upload").set_value(("broken.png", b"\x89PNG\r\n\x1a\nnot really", "image/png")).run()
    assert at.error  # the failed upload, said
    at.radio(key="image_source").set_value("Dataset").run()
    assert at.multiselect(key="methods").value == ["grad_cam", "saliency"]
    caps = _map_captions(at)
    assert len(caps) == 2


def test_a_compare_grid_in_progress_belongs_to_the_server_and_a_new_session_takes_its_choices(tiny_model_dir):
    """A grid being computed is a job on the server's map runner: a new session on Compare (a reload, another tab)
    takes its images and methods, finds the same request running and follows it rather than starting another."""
    import threading

    from ui import jobs

    release = threading.Event()
    selections = {"cmp_mode": "Pick", "cmp_indices": [2, 5], "cmp_methods": ["saliency"], "cmp_target": "True"}
    jobs.maps_runner().submit(lambda progress, cancel: release.wait(30) and [], kind="maps", label="test",
                              meta={"request": "another request", "page": "compare", "selections": selections})
    try:
        at = AppTest.from_file(APP, default_timeout=180).run()
        at.switch_page("pages/compare.py").run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert at.multiselect(key="cmp_indices").value == [2, 5]
        assert at.multiselect(key="cmp_methods").value == ["saliency"]
        assert at.radio(key="cmp_target").value == "True"
        # its own request was computed through the same runner, and is remembered for its next runs
        mine = jobs.maps_runner().get(at.session_state["maps.job.compare"])
        assert mine.kind == "maps" and mine.meta["page"] == "compare" and mine.state == "done"
        assert mine.meta["selections"]["cmp_indices"] == [2, 5]
    finally:
        release.set()
