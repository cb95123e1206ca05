"""The REST API: every endpoint through FastAPI's TestClient, every bad-input class, auth, CORS, jobs, limits, and
one real uvicorn server over HTTP. The maps it returns equal ``core.explain`` on the same image and parameters."""
import base64
import io
import json
import logging
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import core
from core.faces.api import create_app, decode_array
from core.explainers import list_methods
from core.datasets.images import preprocess_for, read_upload
from tests.helpers import ROOT
from tests.helpers import dataset_png as _png
from tests.helpers import expect_error as _expect
from tests.helpers import free_port as _free_port


@pytest.fixture
def client(tiny_model_dir, monkeypatch):
    monkeypatch.delenv("XAI_API_TOKEN", raising=False)
    monkeypatch.delenv("XAI_API_CORS_ORIGINS", raising=False)
    with TestClient(create_app()) as c:
        yield c


@pytest.fixture
def model_id(tiny_model_dir):
    return tiny_model_dir.name


# ------------------------------------------------------------------------------------------------ endpoints
def test_health_version_and_docs(client):
    assert client.get("/health").json() == {"status": "ok"}
    v = client.get("/version").json()
    from importlib import metadata

    assert v["libraries"]["torch"] == metadata.version("torch")
    assert {"captum", "grad-cam", "fastapi", "uvicorn"} <= set(v["libraries"])
    spec = client.get("/openapi.json").json()
    assert {"/health", "/version", "/models", "/models/{model_id}", "/methods", "/datasets", "/predict", "/explain",
            "/jobs/{job_id}", "/datasets/{name}/{split}/{index}"} <= set(spec["paths"])
    # typed request and response models
    assert spec["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert client.get("/docs").status_code == 200


def test_models_and_one_model(client, model_id):
    listed = {m["id"]: m for m in client.get("/models").json()}
    assert listed[model_id]["source"] == "trained" and listed[model_id]["weights_present"]
    assert listed["imagenet-resnet50"]["source"] == "torchvision" and listed["imagenet-resnet50"]["published_top1"] > 80
    assert not listed["imagenet-resnet50"]["weights_present"]  # no weights in the tests' TORCH_HOME
    d = client.get(f"/models/{model_id}").json()
    _, card = core.load_model(model_id)
    assert d["card"]["classes"] == card.classes and d["card"]["weights_sha256"] == card.weights_sha256
    assert d["metrics"]["accuracy"] == pytest.approx(card.metrics["accuracy"])
    assert set(d["metrics"]["per_class"]) == set(card.classes) and "confusion_matrix" in json.dumps(d["metrics"])
    from core.modelling.trust import model_warnings

    assert d["warnings"] == model_warnings(card)
    _expect(client.get("/models/no-such-model"), 404, "Unknown model 'no-such-model'")
    _expect(client.get("/models/.hidden"), 422, "is not allowed")


def test_methods_declare_their_parameters(client):
    got = {m["name"]: m for m in client.get("/methods").json()}
    assert list(got) == list_methods()
    ig = {p["name"]: p for p in got["integrated_gradients"]["params"]}
    assert ig["n_steps"]["kind"] == "int" and ig["n_steps"]["min"] == 4 and ig["n_steps"]["default"] == 64
    assert got["attention_rollout"]["requires"]["attention"] and "arXiv" in got["lime"]["paper"]
    assert got["attention_rollout"]["class_specific"] is False and got["grad_cam"]["class_specific"] is True
    # the parameter schema is the declared Param itself: every field, step and label included, nothing copied
    from dataclasses import asdict

    from core import get_method

    for name, m in got.items():
        assert m["params"] == [json.loads(json.dumps(asdict(p))) for p in get_method(name).params], name
    assert ig["n_steps"]["step"] == 4 and ig["n_steps"]["label"] == "Steps"
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert "Param" in schema and {"step", "label", "when"} <= set(schema["Param"]["properties"])
    assert not {"Explanation", "DatasetInfo", "Job"} & set(schema)  # no schema shadows a core type


def test_the_version_comes_from_the_package_metadata(client):
    from core.version import project_version

    assert client.get("/version").json()["project"] == project_version() != "unknown"
    assert client.get("/openapi.json").json()["info"]["version"] == project_version()


def test_datasets_and_a_dataset_image(client):
    got = {d["name"]: d for d in client.get("/datasets").json()}
    assert got["shapes"]["state"] == "ready" and got["imagenet"]["state"] == "photos only"
    r = client.get("/datasets/shapes/test/5")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    ds = core.load_dataset("shapes", "test")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(r.content))), ds.image(5))
    assert int(r.headers["x-label"]) == int(ds.labels[5]) and r.headers["x-label-name"] == ds.classes[ds.labels[5]]
    _expect(client.get("/datasets/shapes/test/999999"), 422, "index must be in [0,")
    _expect(client.get("/datasets/nope/test/0"), 404, "nope")
    _expect(client.get("/datasets/imagenet/test/0"), 409, "upload")
    _expect(client.get("/datasets/shapes/holdout/0"), 422, "split")


def test_predict_an_upload_and_a_dataset_image(client, model_id):
    png = _png(model_id)
    r = client.post("/predict", data={"model": model_id, "top_k": 2}, files={"image": ("x.png", png, "image/png")})
    assert r.status_code == 200, r.text
    got = r.json()
    model, card = core.load_model(model_id)
    x, _ = preprocess_for(read_upload(png), card)
    proba = core.predict_proba(model, x[None])[0]
    assert got["probabilities"] == pytest.approx(proba.tolist(), abs=1e-6)
    assert [t["index"] for t in got["top_k"]] == np.argsort(-proba)[:2].tolist()
    assert got["ood"] is not None and set(got["ood"]) == {"score", "threshold", "flagged", "message"}
    ref = client.post("/predict", data={"model": model_id, "index": 3}).json()
    assert ref["image"] == {"dataset": card.dataset, "split": "test", "index": 3} and ref["ood"] is None
    assert ref["probabilities"] == pytest.approx(got["probabilities"], abs=1e-6)  # the PNG is that image


def test_explain_returns_the_librarys_maps(client, model_id):
    png = _png(model_id)
    params = {"integrated_gradients": {"n_steps": 16}, "lime": {"num_samples": 80, "seed": 3}}
    r = client.post("/explain", data={"model": model_id, "methods": "grad_cam,integrated_gradients,lime",
                                      "params": json.dumps(params), "target": 1, "npy": "true"},
                    files={"image": ("x.png", png, "image/png")})
    assert r.status_code == 200, r.text
    got = r.json()
    model, card = core.load_model(model_id)
    x, _ = preprocess_for(read_upload(png), card)
    for res in got["results"]:
        ref = core.explain(model, x, res["method"], target=1, **params.get(res["method"], {}))
        assert np.array_equal(decode_array(res["attribution"]), ref.attribution), res["method"]
        assert np.array_equal(np.load(io.BytesIO(base64.b64decode(res["npy_base64"]))), ref.attribution)
        assert res["params"] == json.loads(json.dumps(ref.params)) and res["target"] == 1
        assert Image.open(io.BytesIO(base64.b64decode(res["overlay_png_base64"]))).format == "PNG"
    assert got["results"][2]["params"]["seed"] == 3
    lime = got["results"][2]["extras"]
    assert lime["samples"] == 80 and lime["stopped"] == "fixed" and 0 < lime["stability"] <= 1


def test_explain_lime_is_adaptive_by_default_and_says_how_stable_it_is(client, model_id):
    r = client.post("/explain", data={"model": model_id, "methods": "lime", "index": 4,
                                      "params": json.dumps({"lime": {"max_samples": 150, "round_size": 50}})})
    assert r.status_code == 200, r.text
    res = r.json()["results"][0]
    extras = res["extras"]
    assert res["params"]["mode"] == "adaptive" and extras["mode"] == "adaptive"
    assert extras["samples"] <= 150 and extras["stopped"] in ("stable", "maximum")
    assert {"stability", "topk_agreement", "top_k", "stability_target", "samples_to_target", "intervals"} <= set(extras)
    assert len(extras["intervals"]) == extras["n_superpixels"]


def test_explain_carries_the_quality_numbers_already_computed(client, model_id):
    from core.quality import evaluate

    model, card = core.load_model(model_id)
    ds = core.load_dataset(card.dataset, "test", card.input_size)
    report = evaluate(model, ds, ["saliency"], ["sparseness"], n=3, cache_dir=core.config.models_dir() / model_id / "quality",
                      weights=card.weights_sha256, model_id=model_id)
    got = client.post("/explain", data={"model": model_id, "methods": "saliency", "index": 0}).json()
    q = got["results"][0]["quality"]
    values = [r["value"] for r in report.rows if r["method"] == "saliency" and r["metric"] == "sparseness"]
    assert q["sparseness"]["n"] == 3 and q["sparseness"]["mean"] == pytest.approx(float(np.mean(values)))


# ------------------------------------------------------------------------------------------------ bad input
def test_every_bad_input_class_is_a_precise_4xx(client, model_id):
    png = _png(model_id)
    up = {"image": ("x.png", png, "image/png")}

    def explain(**data):
        return client.post("/explain", data={"model": model_id, **data}, files=up)

    _expect(client.post("/predict", data={"model": model_id}, files={"image": ("x.png", b"not an image", "image/png")}),
            422, "not an image file")
    _expect(client.post("/predict", data={"model": model_id}, files={"image": ("x.png", b"", "image/png")}), 422, "empty")
    _expect(client.post("/predict", data={"model": "nope"}, files=up), 404, "Unknown model 'nope'")
    _expect(client.post("/predict", data={"model": "../outside"}, files=up), 422, "is not allowed")
    _expect(client.post("/predict", data={"model": model_id}), 422, "send an image")
    _expect(client.post("/predict", data={"model": model_id, "index": 10**6}), 422, "index must be in")
    _expect(client.post("/predict", data={"model": model_id, "index": 0, "dataset": "pneumoniamnist"}), 409)
    _expect(client.post("/predict", data={}, files=up), 422, "model")  # a required field missing
    _expect(explain(methods="lrp"), 404, "Unknown method 'lrp'")
    _expect(explain(methods="integrated_gradients", params=json.dumps({"integrated_gradients": {"n_steps": 1}})),
            422, "n_steps", "[4, 512]")
    _expect(explain(methods="saliency", params="{not json"), 422, "params is not valid JSON")
    _expect(explain(methods="saliency", params=json.dumps({"lime": {}})), 422, "not requested: lime")
    _expect(explain(methods="attention_rollout"), 422, "does not apply to this model")
    _expect(explain(methods="saliency", target=99), 422, "target must be a class index")
    _expect(explain(methods=" , "), 422, "at least one method")
    _expect(client.post("/explain", data={"model": "imagenet-resnet50", "methods": "saliency"}, files=up), 409,
            "fetch-weights resnet50")


def test_size_limits_bytes_pixels_and_request(client, model_id, tmp_path):
    limits = client.app.state.limits
    png = _png(model_id)
    limits.max_upload = len(png) - 1
    _expect(client.post("/predict", data={"model": model_id}, files={"image": ("x.png", png, "image/png")}), 413,
            "the limit is")
    limits.max_upload = 10 * 2**20
    limits.max_pixels = 100
    _expect(client.post("/predict", data={"model": model_id}, files={"image": ("x.png", png, "image/png")}), 413,
            "pixel limit")
    limits.max_pixels = 40_000_000
    big = b"\0" * (limits.max_body + 10)
    _expect(client.post("/predict", data={"model": model_id}, files={"image": ("x.png", big, "image/png")}), 413,
            "the limit is")

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(limits.max_body // 2**20 + 2):
            yield b"\0" * 2**20

    r = client.post("/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    _expect(r, 413, "over the")


def test_an_unexpected_error_is_a_500_without_a_traceback_and_is_logged(client, model_id, monkeypatch, caplog):
    import core.modelling.prediction

    def boom(*a, **k):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(core.modelling.prediction, "predict_proba", boom)
    with caplog.at_level(logging.ERROR, logger="xai.api"), \
            TestClient(client.app, raise_server_exceptions=False) as as_served:  # what a real client receives
        r = as_served.post("/predict", data={"model": model_id, "index": 0})
    body = _expect(r, 500, "internal error (log id ")
    assert "secret" not in r.text and "RuntimeError" not in r.text
    ref = body["detail"].split("log id ")[1][:12]
    assert any(ref in rec.getMessage() and rec.exc_info for rec in caplog.records)


def test_client_errors_are_logged(client, caplog):
    with caplog.at_level(logging.WARNING, logger="xai.api"):
        client.get("/models/no-such-model")
    assert any("404" in rec.getMessage() and "no-such-model" in rec.getMessage() for rec in caplog.records)


# ------------------------------------------------------------------------------------------------ auth and CORS
def test_a_token_guards_every_endpoint_but_health(tiny_model_dir, monkeypatch, model_id):
    monkeypatch.setenv("XAI_API_TOKEN", "s3cret-token")
    with TestClient(create_app()) as c:
        assert c.get("/health").status_code == 200
        for method, url, kw in [("get", "/version", {}), ("get", "/models", {}), ("get", f"/models/{model_id}", {}),
                                ("get", "/methods", {}), ("get", "/datasets", {}), ("get", "/datasets/shapes/test/0", {}),
                                ("post", "/predict", {"data": {"model": model_id, "index": 0}}),
                                ("post", "/explain", {"data": {"model": model_id, "index": 0}}),
                                ("get", "/jobs/x", {}), ("delete", "/jobs/x", {}), ("get", "/docs", {}),
                                ("get", "/runs", {}), ("get", "/runs/x", {}), ("delete", "/runs/x", {}),
                                ("get", "/runs/x/manifest", {}), ("post", "/runs", {"json": {"model": "nope", "methods": ["grad_cam"]}}),
                                ("get", "/openapi.json", {})]:
            r = getattr(c, method)(url, **kw)
            _expect(r, 401, "bearer token")
            assert r.headers["www-authenticate"] == "Bearer"
            r = getattr(c, method)(url, headers={"Authorization": "Bearer wrong"}, **kw)
            assert r.status_code == 401, url
            ok = getattr(c, method)(url, headers={"Authorization": "Bearer s3cret-token"}, **kw)
            assert ok.status_code in (200, 404), (url, ok.status_code, ok.text)  # 404: job, run or model "x"/"nope"


def test_cors_is_closed_by_default_and_opens_to_configured_origins(tiny_model_dir, monkeypatch):
    monkeypatch.delenv("XAI_API_CORS_ORIGINS", raising=False)
    with TestClient(create_app()) as c:
        r = c.get("/health", headers={"Origin": "http://viewer.example"})
        assert "access-control-allow-origin" not in r.headers
    monkeypatch.setenv("XAI_API_CORS_ORIGINS", "http://viewer.example")
    with TestClient(create_app()) as c:
        pre = c.options("/predict", headers={"Origin": "http://viewer.example", "Access-Control-Request-Method": "POST"})
        assert pre.headers["access-control-allow-origin"] == "http://viewer.example"
        other = c.get("/health", headers={"Origin": "http://elsewhere.example"})
        assert "access-control-allow-origin" not in other.headers


# ------------------------------------------------------------------------------------------------ jobs and limits
def _wait_job(client, job_id: str, states=("done", "failed", "cancelled"), limit: float = 120) -> dict:
    deadline = time.time() + limit
    while time.time() < deadline:
        j = client.get(f"/jobs/{job_id}").json()
        if j["state"] in states:
            return j
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not reach {states} in {limit} s")


def test_a_job_reports_progress_and_its_result_equals_the_synchronous_call(client, model_id):
    data = {"model": model_id, "methods": "lime,saliency", "index": 2,
            "params": json.dumps({"lime": {"num_samples": 300, "seed": 1}})}
    r = client.post("/explain", data={**data, "async": "true"})
    assert r.status_code == 202 and r.json()["state"] in ("queued", "running")
    seen = []
    deadline = time.time() + 120
    while time.time() < deadline:
        j = client.get(f"/jobs/{r.json()['id']}").json()
        seen.append((j["done"], j["total"]))
        if j["state"] == "done":
            break
        time.sleep(0.05)
    assert j["state"] == "done" and j["done"] == j["total"] > 0
    sync = client.post("/explain", data=data).json()
    for a, b in zip(j["result"]["results"], sync["results"]):
        assert np.array_equal(decode_array(a["attribution"]), decode_array(b["attribution"]))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)  # progress only goes forward
    _expect(client.get("/jobs/no-such-job"), 404, "Unknown job")
    _expect(client.delete("/jobs/no-such-job"), 404, "Unknown job")


def test_delete_cancels_a_running_job(client, model_id):
    r = client.post("/explain", data={"model": model_id, "methods": "lime", "index": 0, "async": "true",
                                      "params": json.dumps({"lime": {"num_samples": 20000}})})
    job_id = r.json()["id"]
    _wait_job(client, job_id, states=("running",), limit=60)
    t0 = time.time()
    assert client.delete(f"/jobs/{job_id}").status_code == 200
    j = _wait_job(client, job_id, limit=60)
    assert j["state"] == "cancelled" and j["result"] is None and time.time() - t0 < 30


def test_a_synchronous_call_past_the_time_limit_is_stopped_with_advice(client, model_id):
    client.app.state.limits.sync_seconds = 0.2
    r = client.post("/explain", data={"model": model_id, "methods": "lime", "index": 0,
                                      "params": json.dumps({"lime": {"num_samples": 20000}})})
    _expect(r, 504, "0.2 s limit", "async=true")


# ------------------------------------------------------------------------------------------------ a real server
def test_the_real_server_over_http(tiny_model_dir, model_id):
    """``python -m core serve`` with uvicorn on a free localhost port, called over HTTP, then stopped."""
    import httpx2

    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("XAI_API_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "core", "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if httpx2.get(f"{base}/health", timeout=2).json() == {"status": "ok"}:
                    break
            except httpx2.HTTPError:
                time.sleep(0.3)
        else:
            raise AssertionError("the server did not answer /health in 90 s")
        png = _png(model_id)
        r = httpx2.post(f"{base}/explain", data={"model": model_id, "methods": "grad_cam"},
                        files={"image": ("x.png", png, "image/png")}, timeout=60)
        assert r.status_code == 200, r.text
        model, card = core.load_model(model_id)
        x, _ = preprocess_for(read_upload(png), card)
        assert np.array_equal(decode_array(r.json()["results"][0]["attribution"]), core.explain(model, x, "grad_cam").attribution)
        bad = httpx2.post(f"{base}/predict", data={"model": "nope", "index": 0}, timeout=30)
        assert bad.status_code == 404 and bad.json()["error"] == "UnknownNameError"
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert f"Uvicorn running on http://127.0.0.1:{port}" in out
    assert "Traceback" not in out


def test_a_run_is_a_job_with_progress_and_its_manifest_over_http(client, model_id):
    from core.runs import load_table, maps_of

    r = client.post("/runs", json={"model": model_id, "methods": ["grad_cam", "saliency"], "limit": 24})
    assert r.status_code == 202, r.text
    info = r.json()
    assert info["estimate"]["images"] == 24 and set(info["estimate"]["methods"]) == {"grad_cam", "saliency"}
    deadline = time.monotonic() + 120
    while info["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
        info = client.get(f"/runs/{info['id']}").json()
    assert info["state"] == "done" and info["done"] == info["total"] == 24, info
    manifest = client.get(info["manifest_url"]).json()
    assert manifest["rows"] == 48 and manifest["images"]["count"] == 24 and manifest["failures"] == []
    assert "path" not in manifest["model"] and "root" not in manifest["dataset"]  # no server paths
    assert info["id"] in [x["id"] for x in client.get("/runs").json()]
    from core import config

    stored = maps_of(load_table(config.runs_dir() / info["id"], "grad_cam"))
    assert stored.shape == (24, 64, 64)
    # a finished run stays readable after a restart (a new app: its job runner never saw it)
    with TestClient(create_app()) as fresh:
        again = fresh.get(f"/runs/{info['id']}").json()
        assert again["state"] == "done" and fresh.get(f"/runs/{info['id']}/manifest").json()["rows"] == 48


def test_run_requests_are_checked_before_any_work(client, model_id):
    _expect(client.post("/runs", json={"model": model_id, "methods": ["grad_cam", "lime"]}), 422,
            "lime is too slow", "--sample")
    _expect(client.post("/runs", json={"model": model_id, "methods": ["nope"]}), 404, "nope")
    _expect(client.post("/runs", json={"model": "no-such-model", "methods": ["grad_cam"]}), 404, "no-such-model")
    _expect(client.post("/runs", json={"model": model_id, "methods": ["saliency"], "params": {"saliency": {"x": 1}}}),
            422, "x")
    assert client.post("/runs", json={"model": model_id, "methods": []}).status_code == 422
    assert client.post("/runs", json={"model": model_id, "methods": ["grad_cam"], "limit": 0}).status_code == 422
    _expect(client.get("/runs/no-such-run"), 404, "Unknown run")
    assert client.get("/runs/..%2F..%2Fetc/manifest").status_code == 404
    _expect(client.get("/runs/a.b/manifest"), 404, "Unknown run")
    assert client.get("/runs").status_code == 200


def test_a_running_run_is_cancelled_and_an_interrupted_one_says_so(client, model_id, tmp_path):
    r = client.post("/runs", json={"model": model_id, "methods": ["integrated_gradients"], "limit": 200,
                                    "batch_size": 4})
    run_id = r.json()["id"]
    assert client.delete(f"/runs/{run_id}").status_code == 200
    deadline = time.monotonic() + 60
    while (info := client.get(f"/runs/{run_id}").json())["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert info["state"] == "cancelled" and "cancelled" in info["error"]
    _expect(client.get(f"/runs/{run_id}/manifest"), 409, "no manifest.json")
    with TestClient(create_app()) as fresh:  # after a restart: not lost, not "done"
        again = fresh.get(f"/runs/{run_id}").json()
        assert again["state"] == "interrupted" and "submit it again" in again["error"]
