"""``POST /models``: a model made elsewhere imported over HTTP (a state dict, a zipped Hugging Face folder), then
listed, predicted, explained and run as a job like any model; every refusal a precise 4xx with nothing saved and no
staged upload left; the size limit, the token, the check and ``strict``; ``/health`` answers during an import."""
from __future__ import annotations

import io
import json
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image

import core
from core.datasets.images import preprocess_for, read_upload
from core.faces.api import decode_array
from core.importers import SETTINGS
from tests import model_files as mf
from tests.helpers import api_clients
from tests.helpers import expect_error as _expect

CLASSES = ["cat", "dog", "fox"]


@pytest.fixture
def models(tmp_path, monkeypatch):
    """A models folder of this test's own, so "nothing saved" is checked on an empty folder."""
    folder = tmp_path / "models"
    monkeypatch.setenv("XAI_MODELS_DIR", str(folder))
    return folder


@pytest.fixture
def make_client(models, monkeypatch):
    """A TestClient for an app created with these environment settings (no token, unless given)."""
    with api_clients(monkeypatch, ("XAI_API_TOKEN", "XAI_API_CORS_ORIGINS", "XAI_MAX_MODEL_MIB")) as make:
        yield make


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture
def state_dict(tmp_path):
    """A user's small CNN (3 classes, trained at 32 px) saved as a plain state dict."""
    return mf.save_state_dict(mf.torchvision_model("small_cnn", 3), tmp_path / "mine.pt")


def _post(c, path, data=None, check_images=(), name=None, **kw):
    files = [("file", (name or path.name, path.read_bytes(), "application/octet-stream"))]
    files += [("check_images", (f"check{i}.png", png, "image/png")) for i, png in enumerate(check_images)]
    return c.post("/models", data=data or {}, files=files, **kw)


def _png(seed: int, size: int = 48) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _nothing_saved(models) -> None:
    """No model folder, and no staged upload left in ``.uploads``."""
    assert not models.exists() or not [p for p in models.iterdir() if p.name != ".uploads"], list(models.iterdir())
    _no_uploads_left(models)


def _no_uploads_left(models) -> None:
    uploads = models / ".uploads"
    assert not uploads.exists() or not any(uploads.iterdir()), list(uploads.iterdir())


@pytest.fixture
def imported(client, state_dict, models):
    r = _post(client, state_dict, {"classes": ",".join(CLASSES), "input_size": "32", "model_id": "mine"})
    assert r.status_code == 201, r.text
    return r.json()


# ------------------------------------------------------------------------------------------------ importing
def test_a_state_dict_with_classes_is_imported_201_and_listed_as_imported(client, imported, models):
    got = imported
    assert got["id"] == "mine" and got["source"] == "imported" and got["source_format"] == "state_dict"
    assert got["source_file"] == "mine.pt" and got["arch"] == "small_cnn" and got["classes"] == 3
    assert got["input_size"] == 32 and got["channels"] == 3 and got["weights_present"] and not got["replaced"]
    assert got["card"]["classes"] == CLASSES and got["card"]["source"]["format"] == "state_dict"
    assert "arch: small_cnn  (detected from the tensors' names and shapes)" in got["draft"]
    assert got["origin"]["classes"] == "given" and got["origin"]["input_size"] == "given"
    assert "grad_cam" in got["methods"] and "attention_rollout" in got["hidden_methods"]
    assert got["check"] is None  # classes of no dataset here, and no check images
    # the answer is what GET /models/{id} gives, and the list says it was imported
    one = client.get("/models/mine").json()
    assert {k: v for k, v in got.items() if k in one} == one
    listed = {m["id"]: m for m in client.get("/models").json()}
    assert listed["mine"]["source"] == "imported" and listed["mine"]["source_file"] == "mine.pt"
    assert listed["imagenet-resnet50"]["source"] == "torchvision" and listed["imagenet-resnet50"]["source_format"] is None
    assert (models / "mine" / "card.json").is_file()
    _no_uploads_left(models)


def test_an_imported_model_is_predicted_explained_and_run_as_a_job(client, imported):
    png = _png(1)
    model, card = core.load_model("mine")
    x, _ = preprocess_for(read_upload(png), card)
    r = client.post("/predict", data={"model": "mine"}, files={"image": ("x.png", png, "image/png")})
    assert r.status_code == 200, r.text
    proba = core.predict_proba(model, x[None])[0]
    assert r.json()["probabilities"] == pytest.approx(proba.tolist(), abs=1e-6)
    assert r.json()["prediction_name"] in CLASSES
    r = client.post("/explain", data={"model": "mine", "methods": "grad_cam,saliency"},
                    files={"image": ("x.png", png, "image/png")})
    assert r.status_code == 200, r.text
    results = {res["method"]: res for res in r.json()["results"]}
    cam = decode_array(results["grad_cam"]["attribution"])
    assert cam.shape == (32, 32) and np.isfinite(cam).all() and cam.max() > 0
    want = core.explain(model, x, "grad_cam", target=results["grad_cam"]["target"])
    assert np.array_equal(cam, want.attribution)
    job = client.post("/explain", data={"model": "mine", "methods": "grad_cam", "async": "true"},
                      files={"image": ("x.png", png, "image/png")})
    assert job.status_code == 202, job.text
    deadline = time.time() + 60
    while (j := client.get(f"/jobs/{job.json()['id']}").json())["state"] in ("queued", "running"):
        assert time.time() < deadline
        time.sleep(0.05)
    assert j["state"] == "done" and np.array_equal(decode_array(j["result"]["results"][0]["attribution"]), cam)


def test_a_zipped_hugging_face_folder_is_imported_with_its_classes_from_id2label(client, tmp_path, models):
    from transformers import ViTImageProcessor

    folder = mf.save_hf(mf.hf_vit(CLASSES), tmp_path / "hf", ViTImageProcessor(size={"height": 32, "width": 32}))
    archive = shutil.make_archive(str(tmp_path / "my_vit"), "zip", root_dir=folder)  # its files at the zip's root
    r = _post(client, tmp_path / "my_vit.zip")
    assert r.status_code == 201, r.text
    got = r.json()
    assert archive.endswith("my_vit.zip") and got["id"] == "my_vit" and got["source_format"] == "huggingface"
    assert got["card"]["classes"] == CLASSES and got["origin"]["classes"].endswith("(id2label)")
    assert got["input_size"] == 32 and got["arch"] == "hf:vit" and "grad_cam" in got["methods"]
    assert client.get("/models/my_vit").json()["source"] == "imported"
    _no_uploads_left(models)
    r = client.post("/explain", data={"model": "my_vit", "methods": "grad_cam"},
                    files={"image": ("x.png", _png(2), "image/png")})
    assert r.status_code == 200, r.text
    assert decode_array(r.json()["results"][0]["attribution"]).shape == (32, 32)


def test_the_check_runs_on_uploaded_images_and_its_result_is_in_the_answer(client, state_dict, models):
    r = _post(client, state_dict, {"classes": ",".join(CLASSES), "input_size": "32"},
              check_images=[_png(i) for i in range(3)])
    assert r.status_code == 201, r.text
    check = r.json()["check"]
    assert check["n"] == 3 and check["source"] == "3 uploaded images" and sum(check["counts"].values()) == 3
    assert set(check["counts"]) <= set(CLASSES) and len(check["predicted"]) == 3 and check["labelled"] == 0
    assert check["accuracy"] is None and check["lines"][0].startswith("checked on 3 images")
    assert r.json()["id"] == "mine"  # from the file's name


def test_the_check_runs_on_the_models_own_dataset_when_it_is_here(client, tmp_path):
    shapes = list(core.dataset_info("shapes").classes)
    path = mf.save_state_dict(mf.torchvision_model("small_cnn", 4), tmp_path / "shapes_cnn.pt")
    r = _post(client, path, {"classes": ",".join(shapes), "input_size": "32", "check_n": "16"})
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["dataset"] == "shapes" and got["check"]["n"] == 16 and got["check"]["labelled"] == 16
    assert "Shapes" in got["check"]["source"] and got["check"]["balanced_accuracy"] is not None


def _one_class_model(path):
    """A model that predicts class 0 for every image: the check warns."""
    net = mf.torchvision_model("small_cnn", 3)
    state = net.state_dict()
    state["head.3.bias"] = torch.tensor([1e4, 0.0, 0.0])
    torch.save(state, path)
    return path


def test_strict_refuses_with_422_when_the_check_warns_and_saves_nothing(client, tmp_path, models):
    path = _one_class_model(tmp_path / "odd.pt")
    data = {"classes": ",".join(CLASSES), "input_size": "32"}
    pngs = [_png(i) for i in range(4)]
    body = _expect(_post(client, path, {**data, "strict": "true"}, check_images=pngs), 422, "strict=true",
                   "nothing was saved", "every one of the 4 images is predicted as 'cat'")
    assert body["error"] == "CheckFailed"
    _nothing_saved(models)
    r = _post(client, path, data, check_images=pngs)  # not strict: saved, with the warning in the answer
    assert r.status_code == 201 and "every one of the 4 images" in r.json()["check"]["warnings"][0]


# ------------------------------------------------------------------------------------------------ refusals
def test_a_pickled_whole_model_is_refused_400_and_nothing_is_saved(client, tmp_path, models):
    path = tmp_path / "whole.pt"
    mf.save_pickled_model(mf.torchvision_model("small_cnn", 3), path)
    body = _expect(_post(client, path, {"classes": ",".join(CLASSES)}), 400, "whole.pt holds a pickled whole model")
    assert body["error"] == "ImportRefused"
    _nothing_saved(models)


@pytest.mark.parametrize("content, name, fragment", [
    (b"just some text, not a model", "notes.pt", "is not a model file this project reads"),
    (b"", "empty.pt", "is empty"),
    (b"PK\x03\x04 damaged", "folder.zip", "not a readable zip archive"),
])
def test_an_unreadable_file_is_refused_400(client, tmp_path, models, content, name, fragment):
    path = tmp_path / name
    path.write_bytes(content)
    _expect(_post(client, path), 400, fragment)
    _nothing_saved(models)


def test_a_head_that_does_not_fit_the_classes_is_refused_400(client, state_dict, models):
    _expect(_post(client, state_dict, {"classes": "a,b", "input_size": "32"}), 400, "3 outputs but 2 class names")
    _nothing_saved(models)


@pytest.mark.parametrize("field, value, fragment", [
    ("input_size", "3", "input_size"), ("channel_order", "xyz", "channel_order"), ("mean", "a,b", "mean must be numbers"),
    ("classes", "onlyone", "at least two class names"), ("model_id", "../outside", "is not allowed"),
    ("check_n", "0", "check_n"),
])
def test_malformed_fields_are_422(client, state_dict, models, field, value, fragment):
    _expect(_post(client, state_dict, {"input_size": "32", field: value}), 422, fragment)
    _nothing_saved(models)


def test_check_images_and_a_check_dataset_together_are_422_and_an_unknown_dataset_404(client, state_dict, models):
    data = {"classes": ",".join(CLASSES), "input_size": "32"}
    _expect(_post(client, state_dict, {**data, "check_dataset": "shapes"}, check_images=[_png(0)]), 422, "not both")
    _expect(_post(client, state_dict, {**data, "check_dataset": "no-such-data"}), 404, "no-such-data")
    _expect(_post(client, state_dict, {**data, "check_dataset": "shapes"}), 422, "cannot check on shapes")
    _nothing_saved(models)


def test_an_existing_id_is_409_unless_replaced(client, imported, state_dict, models):
    data = {"classes": ",".join(CLASSES), "input_size": "32", "model_id": "mine"}
    body = _expect(_post(client, state_dict, data), 409, "'mine' exists already", "replace=true")
    assert body["error"] == "ModelExists"
    before = json.loads((models / "mine" / "card.json").read_text())
    _expect(_post(client, state_dict, {"classes": ",".join(CLASSES), "input_size": "32"}), 409, "exists already")
    _expect(_post(client, state_dict, {**data, "model_id": "imagenet-resnet50"}), 409, "ImageNet")
    r = _post(client, state_dict, {**data, "classes": "x,y,z", "replace": "true"})
    assert r.status_code == 201 and r.json()["replaced"] and r.json()["card"]["classes"] == ["x", "y", "z"]
    assert before["classes"] == CLASSES
    _no_uploads_left(models)


# ------------------------------------------------------------------------------------------------ limits and access
def test_a_model_over_the_limit_is_413_and_other_routes_keep_their_limit(make_client, state_dict, tmp_path, models):
    c = make_client(XAI_MAX_MODEL_MIB=0.01)  # 10 KiB: the state dict is larger
    assert state_dict.stat().st_size > 0.01 * 2**20
    body = _expect(_post(c, state_dict, {"classes": ",".join(CLASSES)}), 413, "XAI_MAX_MODEL_MIB")
    assert body["error"] == "ModelTooLarge"
    _nothing_saved(models)
    # the gate: a model upload may be larger than any other request, and no more than its own limit
    c = make_client(XAI_MAX_MODEL_MIB=3, XAI_API_MAX_BODY_MIB=1)
    big = tmp_path / "big.bin"
    big.write_bytes(b"\1" * (2 * 2**20))
    _expect(_post(c, big), 400, "is not a model file")  # through the gate, refused by what it is
    _expect(c.post("/predict", data={"model": "x"}, files={"image": ("x.png", big.read_bytes(), "image/png")}), 413,
            "the limit is 1.0 MiB")
    big.write_bytes(b"\1" * (5 * 2**20))
    _expect(_post(c, big), 413, "the limit is 4.0 MiB", "a model of at most 3.0 MiB")

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(6):
            yield b"\1" * 2**20

    r = c.post("/models", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    _expect(r, 413, "over the 4.0 MiB limit", "a model of at most 3.0 MiB")
    _nothing_saved(models)


def test_a_token_guards_the_import(make_client, state_dict, models):
    c = make_client(XAI_API_TOKEN="s3cret-token")
    data = {"classes": ",".join(CLASSES), "input_size": "32"}
    r = _post(c, state_dict, data)
    _expect(r, 401, "bearer token")
    assert r.headers["www-authenticate"] == "Bearer"
    assert _post(c, state_dict, data, headers={"Authorization": "Bearer wrong"}).status_code == 401
    _nothing_saved(models)
    r = _post(c, state_dict, data, headers={"Authorization": "Bearer s3cret-token"})
    assert r.status_code == 201, r.text


def test_health_answers_while_an_import_is_being_read(client, state_dict, monkeypatch):
    import core.importers

    entered, release = threading.Event(), threading.Event()
    real = core.importers.inspect_source

    def held(*a, **kw):
        entered.set()
        assert release.wait(60), "the test never released the import"
        return real(*a, **kw)

    monkeypatch.setattr(core.importers, "inspect_source", held)
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(_post, client, state_dict, {"classes": ",".join(CLASSES), "input_size": "32"})
        try:
            assert entered.wait(30)
            t0 = time.perf_counter()
            assert client.get("/health").status_code == 200 and time.perf_counter() - t0 < 2.0
            assert client.get("/models").status_code == 200
        finally:
            release.set()
        assert call.result(timeout=60).status_code == 201


def test_the_schema_builds_the_form_from_the_import_settings(client):
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/models"]["post"]
    ref = op["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    form = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]["properties"]
    assert {s.name for s in SETTINGS} <= set(form)
    for s in SETTINGS:
        assert form[s.name]["description"] == s.help and form[s.name]["title"] == s.label
        if s.kind == "int":
            assert (form[s.name]["minimum"], form[s.name]["maximum"]) == (s.min, s.max)
        if s.kind == "choice":
            assert form[s.name]["enum"] == list(s.choices)
    assert form["file"]["format"] == "binary" and form["check_images"]["items"]["format"] == "binary"
    assert all("null" not in json.dumps(p) for p in form.values())
    assert op["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith("/ImportResponse")
    assert {"400", "409", "413", "422", "503"} <= set(op["responses"])


def test_the_seed_case_over_http(client, tmp_path, models):
    """The seed case through the API: a torchvision ResNet-18 with a 9-class PathMNIST head at 224 px, imported, then
    its Grad-CAM of an uploaded photo equals pytorch-grad-cam's on the user's own model."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    user = mf.torchvision_model("resnet18", 9)
    path = mf.save_state_dict(user, tmp_path / "best_pathmnist_resnet18.pth")
    r = _post(client, path, {"classes": "\n".join(mf.PATH_CLASSES), "input_size": "224"})
    assert r.status_code == 201, r.text
    got = r.json()
    assert (got["id"], got["arch"], got["dataset"], got["source"]) == ("best_pathmnist_resnet18", "resnet18",
                                                                      "pathmnist", "imported")
    png = _png(4, size=256)
    r = client.post("/explain", data={"model": got["id"], "methods": "grad_cam"},
                    files={"image": ("tissue.png", png, "image/png")})
    assert r.status_code == 200, r.text
    result = r.json()["results"][0]
    _, card = core.load_model(got["id"])
    x = preprocess_for(read_upload(png), card)[0][None]
    with GradCAM(model=user, target_layers=[user.layer4]) as cam:
        want = cam(input_tensor=mf.user_input(x, card.mean, card.std),
                   targets=[ClassifierOutputTarget(result["target"])])[0]
    assert np.corrcoef(decode_array(result["attribution"]).ravel(), want.ravel())[0, 1] >= 0.99
