"""AppTest runs of the Import page (a model read by path or upload, its card corrected in the form, checked on images,
saved, then explained), the links to it from empty model lists, and Explain's Folder image source."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from core import get_method
from tests import model_files as mf
from tests.helpers import APP, png_bytes

pytestmark = pytest.mark.usefixtures("fresh_caches")

SHAPES = ["circle", "square", "triangle", "cross"]


@pytest.fixture
def models(tmp_path, monkeypatch, isolated_dirs):
    """An empty models folder of this test's own."""
    d = tmp_path / "models"
    d.mkdir()
    monkeypatch.setenv("XAI_MODELS_DIR", str(d))
    return d


def _page(name: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page(f"pages/{name}.py").run()
    assert not at.exception, at.exception
    return at


def _field(at: AppTest, name: str):
    key = f"imp.field.{name}"
    for kind in ("text_input", "text_area", "selectbox"):
        found = [w for w in at.get(kind) if w.key == key]
        if found:
            return found[0]
    raise AssertionError(f"no form field {key}")


def _read_by_path(at: AppTest, path) -> None:
    at.text_input(key="imp_path").set_value(str(path)).run()
    at.button(key="imp_read").click().run()
    assert not at.exception, at.exception


def _edit(at: AppTest, **values) -> None:
    for name, value in values.items():
        _field(at, name).set_value(value)
    at.run()
    at.button(key="imp_apply").click().run()
    assert not at.exception, at.exception


def _check_on_shapes(at: AppTest, n: int = 32) -> None:
    at.radio(key="imp_check_on").set_value("Dataset")
    at.number_input(key="imp_check_n").set_value(n).run()
    assert at.selectbox(key="imp_check_dataset").value == "shapes"
    at.button(key="imp_check_run").click().run()
    assert not at.exception, at.exception


def _png(size=(90, 60), seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    return png_bytes(Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)))


def _map_captions(at: AppTest) -> list[str]:
    return [im.proto.imgs[0].caption for im in at.get("image") if im.proto.imgs and " → " in im.proto.imgs[0].caption]


def test_import_by_path_edit_the_card_check_save_and_explain(models, tmp_path):
    # four outputs, so that the shapes dataset (four classes) can check it once its classes are named
    path = mf.save_state_dict(mf.torchvision_model("small_cnn", 4), tmp_path / "tiny_net.pth")
    at = _page("import_model")
    _read_by_path(at, path)
    assert not at.error, [e.value for e in at.error]
    # every detected value in the form, beside where it came from
    assert _field(at, "model_id").value == "tiny_net" and _field(at, "arch").value == "small_cnn"
    assert _field(at, "classes").value == "class 0\nclass 1\nclass 2\nclass 3"
    origins = " ".join(c.value for c in at.caption)
    assert "Model id: from the file's name" in origins and "Classes: default: no names" in origins
    assert "Mean: default: ImageNet's" in origins
    assert any("methods apply" in m.value and "Grad-CAM" in m.value for m in at.markdown)
    # the classes are shapes' in another order, and the input size its images'
    _edit(at, classes="square\ncircle\ncross\ntriangle", input_size="32")
    assert not at.error, [e.value for e in at.error]
    assert _field(at, "classes").value == "square\ncircle\ncross\ntriangle" and _field(at, "input_size").value == "32"
    origins = " ".join(c.value for c in at.caption)
    assert "Classes: given" in origins and "Input size: given" in origins
    assert any("classes are those of **Shapes (built-in synthetic)**" in m.value and "another order" in m.value
               for m in at.markdown)
    _check_on_shapes(at)
    assert not at.error, [e.value for e in at.error]
    assert any("32 images of Shapes" in m.value for m in at.markdown)
    assert [m.label for m in at.metric] == ["Accuracy", "Balanced accuracy"]
    table = at.dataframe[0].value
    assert list(table["class"]) == ["square", "circle", "cross", "triangle"] and table["predicted"].sum() == 32
    at.button(key="imp_save").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert (models / "tiny_net" / "card.json").is_file() and not list((models / ".uploads").glob("*"))
    assert any("Saved **tiny_net**" in s.value for s in at.success)
    linked = {el.proto.page for el in at.get("page_link")}
    assert {"explain", "compare", "performance"} <= linked
    # saving it again is refused, unless replace is ticked
    at.button(key="imp_save").click().run()
    assert any("exists already" in e.value for e in at.error)
    at.checkbox(key="imp_replace").check().run()
    at.button(key="imp_save").click().run()
    assert not at.error, [e.value for e in at.error]

    # on Explain at once: opened on it, under shapes (its classes mapped by name) and under the imported models
    at.switch_page("pages/explain.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="dataset").value == "shapes"
    mapped = "circle (dataset #0) → circle (model #1)"
    assert any("names this dataset's classes in another order" in c.value and mapped in c.value for c in at.caption)
    at.selectbox(key="dataset").set_value("imported").run()
    models_box = at.selectbox(key="model")
    assert models_box.value == str(models / "tiny_net")
    assert "tiny_net (imported state_dict, not evaluated)" in models_box.options
    at.radio(key="image_source").set_value("Upload").run()
    at.file_uploader(key="upload").set_value(("photo.png", _png(), "image/png")).run()
    at.multiselect(key="methods").set_value(["grad_cam"]).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    caps = _map_captions(at)
    assert len(caps) == 1 and caps[0].startswith(get_method("grad_cam").title), caps
    assert any("this model was imported" in c.value for c in at.caption)  # no OOD statistics, and why


def test_an_uploaded_pickled_model_is_refused_and_nothing_is_saved(models, tmp_path):
    path = mf.save_pickled_model(mf.torchvision_model("small_cnn", 3), tmp_path / "whole.pt")
    at = _page("import_model")
    at.radio(key="imp_how").set_value("Upload").run()
    at.file_uploader(key="imp_upload").set_value(("whole.pt", path.read_bytes(), "application/octet-stream"))
    at.run()
    at.button(key="imp_read").click().run()
    assert not at.exception, at.exception
    assert any("pickled whole model" in e.value for e in at.error), [e.value for e in at.error]
    assert not at.get("text_area") and not [b for b in at.button if b.key == "imp_save"]  # no form, no save
    assert [p.name for p in models.iterdir() if p.name != ".uploads"] == []
    assert not list((models / ".uploads").glob("*"))  # the staged upload is gone


def test_an_uploaded_torchscript_model_is_read_edited_checked_and_saved(models, tmp_path):
    """A format whose file is copied at save: the upload is staged again for *Save*, and removed after."""
    path = mf.save_torchscript(mf.torchvision_model("small_cnn", 3), tmp_path / "net.ts", torch.rand(1, 3, 32, 32))
    at = _page("import_model")
    at.radio(key="imp_how").set_value("Upload").run()
    at.file_uploader(key="imp_upload").set_value(("net.ts", path.read_bytes(), "application/octet-stream")).run()
    at.button(key="imp_read").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    _edit(at, model_id="scripted", input_size="32", classes="red\ngreen\nblue")
    assert not at.error, [e.value for e in at.error]
    assert at.get("subheader")[0].value == "Its card: scripted"
    at.radio(key="imp_check_on").set_value("Uploaded images").run()
    at.file_uploader(key="imp_check_uploads").set_value([("a.png", _png(seed=1), "image/png"),
                                                         ("b.png", _png(seed=2), "image/png")]).run()
    at.button(key="imp_check_run").click().run()
    assert not at.exception and any("2 uploaded images" in m.value for m in at.markdown)
    assert any("Unlabelled images" in c.value for c in at.caption)
    at.button(key="imp_save").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert (models / "scripted" / "card.json").is_file() and not list((models / ".uploads").glob("*"))


def test_a_card_value_that_does_not_fit_is_one_error_with_the_numbers(models, tmp_path):
    path = mf.save_state_dict(mf.torchvision_model("small_cnn", 3), tmp_path / "net.pth")
    at = _page("import_model")
    _read_by_path(at, path)
    _edit(at, mean="104, 117, 123", input_size="32")
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "[104.0, 117.0, 123.0]" in errors[0] and "[0, 1]" in errors[0], errors
    assert "pixel_range 255" in errors[0] and "\n" not in errors[0]
    # what was typed stays in the form; the draft stays as it was
    assert _field(at, "mean").value == "104, 117, 123" and _field(at, "input_size").value == "32"
    at.run()
    assert _field(at, "mean").value == "104, 117, 123"
    # with the pixel range the mean was given in, it is taken
    _edit(at, pixel_range="255", std="58, 57, 57")
    assert not at.error, [e.value for e in at.error]
    assert "Pixel range: given" in " ".join(c.value for c in at.caption)


def test_the_check_warns_of_a_wrong_mean_and_std_on_a_trained_model(models, tmp_path, shapes_model_dir):
    from core import load_model

    model, card = load_model(shapes_model_dir, device="cpu")
    path = tmp_path / "shapes_net.pt"
    torch.save(model.net.state_dict(), path)
    at = _page("import_model")
    _read_by_path(at, path)
    _edit(at, classes="\n".join(card.classes), input_size=str(card.input_size), mean="0.9,0.9,0.9",
          std="0.02,0.02,0.02")
    assert not at.error, [e.value for e in at.error]
    _check_on_shapes(at, 48)
    warnings = [w.value for w in at.warning]
    assert warnings and any("likely causes: a wrong mean / std" in w for w in warnings), warnings
    # its own mean and std: no warning, and the accuracy it had
    _edit(at, mean=",".join(map(str, card.mean)), std=",".join(map(str, card.std)))
    _check_on_shapes(at, 48)
    assert not [w.value for w in at.warning if "likely causes" in w.value]
    assert any("Nothing in its predictions" in s.value for s in at.success)


def test_home_and_every_empty_model_list_link_the_import_page(models):
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert "import_model" in {el.proto.page for el in at.get("page_link")}
    for page in ("explain", "compare", "performance", "quality", "dataset"):
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, (page, at.exception)
        assert "import_model" in {el.proto.page for el in at.get("page_link")}, page
        assert any("No trained model" in i.value for i in at.info), page


def _imported(models, tmp_path, classes: list[str]) -> None:
    from core.importers import import_model

    path = mf.save_state_dict(mf.torchvision_model("small_cnn", len(classes)), tmp_path / "pets.pth")
    import_model(path, models, classes=classes, input_size=32, model_id="pets")


def test_explain_a_folder_image_with_an_imported_model(models, tmp_path):
    _imported(models, tmp_path, ["dogs", "cats"])
    folder = tmp_path / "photos"
    for i, (cls, colour) in enumerate([("cats", (200, 40, 40)), ("dogs", (40, 40, 200)), ("cats", (180, 90, 20))]):
        (folder / cls).mkdir(parents=True, exist_ok=True)
        img = Image.new("RGB", (48, 40), colour)
        img.paste((255, 255, 255), (10, 10, 30, 25))
        img.save(folder / cls / f"p{i}.png")
    at = _page("explain")
    at.selectbox(key="dataset").set_value("imported").run()
    at.radio(key="image_source").set_value("Folder").run()
    assert any("Type the path of a folder" in i.value for i in at.info)
    at.text_input(key="folder_path").set_value(str(folder)).run()
    at.multiselect(key="methods").set_value(["grad_cam"]).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.number_input(key="folder_index").max == 2
    assert any("cats/p0.png: 48x40 → 32x32; class folder cats" in c.value for c in at.caption)
    assert any(m.value.startswith("**True class:** cats") for m in at.markdown)  # labelled by its class folder
    assert len(_map_captions(at)) == 1
    at.number_input(key="folder_index").set_value(2).run()
    assert not at.exception and any("dogs/p1.png" in c.value for c in at.caption)
    assert any(m.value.startswith("**True class:** dogs") for m in at.markdown)
    at.button(key="folder_random").click().run()
    assert not at.exception and len(_map_captions(at)) == 1
    # a folder that is not one: one line, no traceback
    at.text_input(key="folder_path").set_value(str(tmp_path / "nowhere")).run()
    assert not at.exception and any("not a folder" in e.value for e in at.error)


def test_the_seed_case_imported_on_the_page_explains_as_the_reference_libraries(models, tmp_path):
    """A torchvision ResNet-18 state dict with a 9-class PathMNIST head at 224 px, imported on the page and explained on
    Explain: its Grad-CAM and Integrated Gradients equal pytorch-grad-cam's and captum's on the user's own model."""
    from captum.attr import IntegratedGradients
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from core.datasets.images import preprocess_for, read_upload
    from ui import cache, state

    user = mf.torchvision_model("resnet18", 9)
    path = mf.save_state_dict(user, tmp_path / "best_pathmnist_resnet18.pth")
    at = _page("import_model")
    _read_by_path(at, path)
    _edit(at, classes="\n".join(mf.PATH_CLASSES))
    assert any("classes are those of **PathMNIST" in m.value for m in at.markdown)
    at.button(key="imp_save").click().run()
    assert not at.error, [e.value for e in at.error]
    at.switch_page("pages/explain.py").run()
    at.selectbox(key="dataset").set_value("imported").run()
    at.radio(key="image_source").set_value("Upload").run()
    photo = _png((300, 240), seed=3)
    at.file_uploader(key="upload").set_value(("tissue.png", photo, "image/png")).run()
    at.session_state[state.param_key("integrated_gradients", "n_steps")] = 16
    at.multiselect(key="methods").set_value(["grad_cam", "integrated_gradients"]).run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert len(_map_captions(at)) == 2

    from core import load_model

    _, card = load_model(models / "best_pathmnist_resnet18")  # the card the page saved
    x = preprocess_for(read_upload(photo), card)[0][None]
    inp, base = mf.user_input(x, card.mean, card.std), mf.user_input(torch.zeros_like(x), card.mean, card.std)
    target = int(user(inp).argmax())
    with GradCAM(model=user, target_layers=[user.layer4]) as cam:
        want = {"grad_cam": cam(input_tensor=inp, targets=[ClassifierOutputTarget(target)])[0]}
    want["integrated_gradients"] = IntegratedGradients(user).attribute(
        inp, baselines=base, target=target, n_steps=16, method="gausslegendre").sum(dim=1)[0].detach().numpy()
    shown = {e.method: e for e in list(cache.results()._items.values()) if e.target == target}
    assert shown["integrated_gradients"].params["n_steps"] == 16
    for method, reference in want.items():
        assert np.corrcoef(shown[method].attribution.ravel(), np.ravel(reference))[0, 1] >= 0.99, method
