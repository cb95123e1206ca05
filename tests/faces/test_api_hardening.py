"""The API under hostile load and for generated clients (issue 21): liveness while compute is saturated, bounded
queues and kept results, jobs that outlive a restart, slow clients, unparsable input, the OpenAPI contract
(Schemathesis over it, and a client generated from it), and nothing of the server's own paths or Host reflected."""
import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from core import config
from core.faces.api import create_app
from tests.helpers import api_clients
from tests.helpers import dataset_png as _png
from tests.helpers import expect_error as _expect
from tests.helpers import free_port as _free_port
from tests.helpers import ROOT


@pytest.fixture
def model_id(tiny_model_dir):
    return tiny_model_dir.name


@pytest.fixture
def make_client(tiny_model_dir, monkeypatch):
    """A TestClient for an app created with these environment settings (no token, unless given)."""
    with api_clients(monkeypatch) as make:
        yield make


class Gate:
    """Holds every model computation until opened (it replaces ``predict_proba`` where the API calls it)."""

    def __init__(self, monkeypatch) -> None:
        import core.modelling.prediction as prediction

        self.open, self.entered = threading.Event(), 0
        real = prediction.predict_proba

        def held(*a, **kw):
            self.entered += 1
            assert self.open.wait(60), "the test never opened the gate"
            return real(*a, **kw)

        monkeypatch.setattr(prediction, "predict_proba", held)


@pytest.fixture
def gate(monkeypatch):
    g = Gate(monkeypatch)
    yield g
    g.open.set()


def _predict(c, model_id, png):
    return c.post("/predict", data={"model": model_id}, files={"image": ("x.png", png, "image/png")})


# ------------------------------------------------------------------------------------------------ liveness
def test_health_version_and_job_polls_answer_while_every_compute_slot_and_thread_is_taken(make_client, model_id, gate):
    """50 predictions held in compute (more than AnyIO's 40 threads): /health, /version and a job poll still answer
    at once, because the handlers await the compute futures instead of holding threads."""
    c = make_client(XAI_API_CONCURRENCY=2, XAI_API_MAX_WAITING=100)
    png = _png(model_id)
    pool = ThreadPoolExecutor(50)
    try:
        calls = [pool.submit(_predict, c, model_id, png) for _ in range(50)]
        deadline = time.time() + 30
        while gate.entered < 2 and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # every call is in: two in compute, 48 waiting for it
        assert gate.entered == 2
        for path, code in (("/health", 200), ("/version", 200), ("/jobs/0-nope", 404)):
            t0 = time.perf_counter()
            r = c.get(path)
            assert r.status_code == code and time.perf_counter() - t0 < 2.0, (path, r.status_code)
        gate.open.set()
        assert [f.result(timeout=120).status_code for f in calls] == [200] * 50
    finally:
        gate.open.set()
        pool.shutdown()


def test_beyond_the_waiting_limit_a_computation_is_refused_503_with_retry_after(make_client, model_id, gate):
    c = make_client(XAI_API_CONCURRENCY=1, XAI_API_MAX_WAITING=2)
    png = _png(model_id)
    with ThreadPoolExecutor(3) as pool:
        held = [pool.submit(_predict, c, model_id, png) for _ in range(3)]  # one computing, two waiting
        deadline = time.time() + 30
        while gate.entered < 1 and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        r = _predict(c, model_id, png)
        body = _expect(r, 503, "busy")
        assert body["error"] == "ServerBusy" and int(r.headers["Retry-After"]) > 0
        gate.open.set()
        assert [f.result(timeout=60).status_code for f in held] == [200] * 3
    assert _predict(c, model_id, png).status_code == 200  # the slots are free again


def test_an_accepted_job_waits_for_a_compute_thread_instead_of_failing_as_busy(make_client, model_id, gate):
    c = make_client(XAI_API_CONCURRENCY=1, XAI_API_MAX_WAITING=1)
    png = _png(model_id)
    with ThreadPoolExecutor(2) as pool:
        held = [pool.submit(_predict, c, model_id, png) for _ in range(2)]  # one computing, one waiting: full
        deadline = time.time() + 30
        while gate.entered < 1 and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        assert _predict(c, model_id, png).status_code == 503
        r = c.post("/explain", data={"model": model_id, "methods": "saliency", "async": "true", "index": "0"})
        assert r.status_code == 202, r.text
        gate.open.set()
        assert [f.result(timeout=60).status_code for f in held] == [200, 200]
    assert _wait(c, r.json()["id"])["state"] == "done"


def test_uploads_are_decoded_on_a_few_threads_so_at_most_that_many_at_once(make_client, model_id, monkeypatch):
    """A large image costs hundreds of MiB while it is decoded: no more decodes run at once than decode threads,
    and the heap is trimmed after each."""
    import core.datasets.images as images
    import core.faces.api.services as services

    active, most, trims = [0], [0], []
    lock = threading.Lock()
    real = images.read_upload

    def counted(*a, **kw):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.2)
        try:
            return real(*a, **kw)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(images, "read_upload", counted)
    monkeypatch.setattr(services, "release_memory", lambda: trims.append(1))
    c = make_client(XAI_API_DECODES=2, XAI_API_MAX_WAITING=100)
    png = _png(model_id)
    with ThreadPoolExecutor(8) as pool:
        codes = [f.result().status_code for f in [pool.submit(_predict, c, model_id, png) for _ in range(8)]]
    assert codes == [200] * 8 and most[0] == 2 and len(trims) == 8


# ------------------------------------------------------------------------------------------------ bounds
def test_methods_are_deduplicated_and_their_number_capped(make_client, model_id):
    c = make_client()
    png = _png(model_id)
    files = {"image": ("x.png", png, "image/png")}
    r = c.post("/explain", data={"model": model_id, "methods": "grad_cam,saliency,grad_cam, grad_cam"}, files=files)
    assert r.status_code == 200 and [m["method"] for m in r.json()["results"]] == ["grad_cam", "saliency"]
    _expect(c.post("/explain", data={"model": model_id, "methods": ",".join(["grad_cam"] * 1000)}, files=files),
            422, "1000 method names", "at most 64")


def test_the_job_queue_is_capped_429_with_retry_after(make_client, model_id, gate):
    c = make_client(XAI_API_MAX_QUEUED_JOBS=2, XAI_API_CONCURRENCY=2)
    data = {"model": model_id, "methods": "grad_cam", "async": "true", "index": "0"}
    ids = []
    for _ in range(4):  # two jobs hold the two workers (held in compute), two wait
        r = c.post("/explain", data=data)
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    r = c.post("/explain", data=data)
    body = _expect(r, 429, "waiting", "limit is 2")
    assert body["error"] == "QueueFull" and int(r.headers["Retry-After"]) > 0
    gate.open.set()
    for job_id in ids:
        assert _wait(c, job_id)["state"] == "done"
    assert c.post("/explain", data=data).status_code == 202


def _wait(c, job_id, limit=120):
    deadline = time.time() + limit
    while time.time() < deadline:
        j = c.get(f"/jobs/{job_id}").json()
        if j["state"] not in ("queued", "running"):
            return j
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_finished_results_live_on_disk_not_in_memory_and_outlive_a_restart(make_client, model_id, isolated_dirs,
                                                                            monkeypatch):
    c = make_client()
    r = c.post("/explain", data={"model": model_id, "methods": "grad_cam", "async": "true", "index": "1"})
    job_id = r.json()["id"]
    done = _wait(c, job_id)
    assert done["state"] == "done" and done["result"]["results"][0]["method"] == "grad_cam"
    job = c.app.state.services.jobs.get(job_id)
    assert job.result is None and job.stored  # the result is in the store, not in memory
    assert (isolated_dirs["jobs"] / f"{job_id}.json").is_file()
    # a queued job at the moment of a "crash": the new server says it was interrupted
    import core.modelling.prediction as prediction

    hold = threading.Event()
    real = prediction.predict_proba
    monkeypatch.setattr(prediction, "predict_proba", lambda *a, **kw: hold.wait(60) and real(*a, **kw))
    running = c.post("/explain", data={"model": model_id, "methods": "grad_cam", "async": "true", "index": "2"})
    running_id = running.json()["id"]
    try:
        again = make_client()  # another server process on the same job store
        assert again.get(f"/jobs/{job_id}").json() == done
        lost = again.get(f"/jobs/{running_id}").json()
        assert lost["state"] == "interrupted" and "submit it again" in lost["error"] and lost["result"] is None
        _expect(again.get("/jobs/1-000000000000"), 404, "Unknown job")
    finally:
        hold.set()


def test_the_job_store_keeps_bounded_bytes_and_age(tmp_path):
    from core.jobs import JobRunner, JobStore

    store = JobStore(tmp_path, max_bytes=3000, max_age=3600)
    runner = JobRunner(workers=1, store=store)
    jobs = [runner.submit(lambda p, c, i=i: {"payload": "x" * 900, "i": i}) for i in range(6)]
    deadline = time.time() + 30
    while any(j.running for j in jobs) and time.time() < deadline:
        time.sleep(0.02)
    assert store.bytes() <= 3000
    assert runner.result(jobs[-1]) == {"payload": "x" * 900, "i": 5}  # the newest are kept...
    assert runner.result(jobs[0]) is None  # ...the oldest went first
    old = tmp_path / f"{jobs[-1].id}.json"
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert store.load(jobs[-1].id) is None  # past its age: gone for readers, and pruned at the next write
    store.prune()
    assert not old.exists()
    runner.shutdown()


def test_the_runner_forgets_finished_jobs_by_count_and_age_and_caps_its_queue():
    from core.errors import UnknownNameError
    from core.jobs import JobRunner, QueueFull

    release = threading.Event()
    runner = JobRunner(workers=1, keep=2, max_age=0.5, max_queued=1)
    first = runner.submit(lambda p, c: release.wait(10))
    deadline = time.time() + 10
    while first.state != "running" and time.time() < deadline:
        time.sleep(0.01)
    waiting = runner.submit(lambda p, c: 1)
    with pytest.raises(QueueFull, match="1 jobs are already waiting"):
        runner.submit(lambda p, c: 2)
    release.set()
    while waiting.running and time.time() < deadline:
        time.sleep(0.01)
    assert runner.get(waiting.id).result == 1
    time.sleep(0.6)
    with pytest.raises(UnknownNameError):
        runner.get(waiting.id)
    runner.shutdown()


# ------------------------------------------------------------------------------------------------ unparsable input
def test_deeply_nested_json_is_a_422_everywhere(make_client, model_id):
    c = make_client()
    deep = "[" * 100_000 + "]" * 100_000
    _expect(c.post("/explain", data={"model": model_id, "methods": "grad_cam", "params": deep, "index": "0"}),
            422, "nested too deeply")
    for body in (deep, '{"model": ' + deep + "}"):
        _expect(c.post("/runs", content=body, headers={"content-type": "application/json"}), 422, "cannot be parsed")
    _expect(c.post("/runs", content="{not json", headers={"content-type": "application/json"}), 422)


def test_router_errors_carry_the_error_model_and_no_host_is_reflected(make_client):
    c = make_client()
    assert _expect(c.get("/nowhere"), 404)["error"] == "HTTPError"
    assert _expect(c.delete("/health"), 405)["error"] == "HTTPError"
    r = c.get("/models/", headers={"host": "evil.example"}, follow_redirects=False)
    assert r.status_code == 404 and "location" not in r.headers and "evil" not in r.text


def test_no_answer_shows_the_servers_own_folders(make_client, model_id):
    c = make_client()
    roots = [str(p) for p in (config.data_dir(), config.models_dir(), config.runs_dir(), config.jobs_dir(), ROOT)]
    listed = c.get("/datasets")
    assert listed.status_code == 200
    missing = [d for d in listed.json() if d["state"] != "ready"]
    assert missing and all(d["detail"] for d in missing)
    for text in [listed.text, c.post("/predict", data={"model": model_id, "dataset": "pathmnist", "index": "0"}).text,
                 c.get("/datasets/chest_xray/test/0").text]:
        assert not any(r in text for r in roots), text


# ------------------------------------------------------------------------------------------------ the contract
def test_the_schema_describes_uploads_as_binary_files_and_every_error_by_the_error_model(make_client):
    spec = make_client().get("/openapi.json").json()
    for path in ("/predict", "/explain"):
        ref = spec["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
        form = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]
        assert form["properties"]["image"] == {"type": "string", "format": "binary", "title": "Image",
                                               **({"description": d} if (d := form["properties"]["image"].get(
                                                   "description")) else {})}
        assert all("null" not in json.dumps(p) for p in form["properties"].values())  # a form field is never null
    for path, item in spec["paths"].items():
        for method, op in item.items():
            errors = {c: r for c, r in op["responses"].items() if int(c) >= 400}
            assert {"422", "500"} <= set(errors), (path, method)
            for code, r in errors.items():
                assert r["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, (
                    path, method, code)
    assert {"408", "413", "429", "503", "504"} <= set(spec["paths"]["/explain"]["post"]["responses"])
    assert "HTTPValidationError" not in json.dumps(spec)


@pytest.fixture
def schema_app(tiny_model_dir, monkeypatch):
    monkeypatch.delenv("XAI_API_TOKEN", raising=False)
    monkeypatch.setenv("XAI_API_SYNC_SECONDS", "20")
    with TestClient(create_app()) as c:
        yield c.app


def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_schema(schema_app, model_id):
    """Property-based: Schemathesis generates requests from the schema (bounded in examples and time), uploads
    included, with the model field pointed at the test model so requests reach it."""
    import hypothesis
    import schemathesis
    from schemathesis.checks import (content_type_conformance, not_a_server_error, response_schema_conformance,
                                     status_code_conformance)

    spec = json.loads(json.dumps(schema_app.openapi()))
    # point the generator at the test model, real methods and the dataset's first images, so requests get through
    # the checks to the model (uploads are random bytes: those are refused, as they should be)
    narrow = {"model": {"type": "string", "enum": [model_id]}, "dataset": {"type": "null"},
              "methods": {"type": "string", "enum": ["grad_cam", "saliency", "grad_cam,saliency"]},
              "params": {"type": "string", "enum": ["{}"]},
              "index": {"type": "integer", "minimum": 0, "maximum": 20},
              "target": {"type": "integer", "minimum": 0, "maximum": 3}}
    for name in ("Body_predict_predict_post", "Body_explain_explain_post"):
        props = spec["components"]["schemas"][name]["properties"]
        props.update({k: v for k, v in narrow.items() if k in props})
    spec["paths"]["/models/{model_id}"]["get"]["parameters"][0]["schema"] = narrow["model"]
    schema = schemathesis.openapi.from_dict(spec)
    schema.app = schema_app
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    reached, started = set(), time.monotonic()
    for operation in schema.get_all_operations():
        op = operation.ok()
        if op.path == "/runs" and op.method.upper() == "POST":
            continue  # a whole-split run per example: its bad inputs are in test_api; its schema is checked above

        @hypothesis.settings(max_examples=12, deadline=None, database=None, derandomize=True,
                             suppress_health_check=list(hypothesis.HealthCheck),
                             phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate])
        @hypothesis.given(case=op.as_strategy())
        def check(case):
            if time.monotonic() - started > 240:
                return
            response = case.call(app=schema_app)
            case.validate_response(response, checks=checks)
            reached.add((op.method.upper(), op.path, response.status_code))

        check()
    assert time.monotonic() - started < 300
    assert any(m == "POST" and p in ("/predict", "/explain") and s == 200 for m, p, s in reached), sorted(reached)


def test_a_client_generated_from_the_schema_uploads_predicts_and_explains(tiny_model_dir, model_id, tmp_path,
                                                                          monkeypatch):
    """openapi-python-client generates a client from /openapi.json; it talks to a real server over HTTP, with a
    token."""
    monkeypatch.setenv("XAI_API_TOKEN", "s3cret")
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(create_app().openapi()))
    out = tmp_path / "client"
    gen = subprocess.run([sys.executable, "-m", "openapi_python_client", "generate", "--path", str(spec),
                          "--output-path", str(out), "--meta", "none"], capture_output=True, text=True, timeout=180,
                         cwd=tmp_path)
    assert gen.returncode == 0, gen.stdout + gen.stderr
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    with _server({"XAI_API_TOKEN": "s3cret"}) as base:
        from client import AuthenticatedClient
        from client.api.explain import explain_explain_post
        from client.api.predict import predict_predict_post
        from client.models import BodyExplainExplainPost, BodyPredictPredictPost, ExplainResponse, PredictResponse
        from client.types import File

        api = AuthenticatedClient(base_url=base, token="s3cret", timeout=60)
        png = _png(model_id)
        p = predict_predict_post.sync(client=api, body=BodyPredictPredictPost(
            model=model_id, image=File(payload=__import__("io").BytesIO(png), file_name="x.png", mime_type="image/png")))
        assert isinstance(p, PredictResponse) and len(p.probabilities) == 4
        e = explain_explain_post.sync(client=api, body=BodyExplainExplainPost(
            model=model_id, methods="grad_cam", image=File(payload=__import__("io").BytesIO(png), file_name="x.png")))
        assert isinstance(e, ExplainResponse) and e.results[0].method == "grad_cam" and e.prediction == p.prediction
        from client import Client

        refused = predict_predict_post.sync_detailed(client=Client(base_url=base), body=BodyPredictPredictPost(
            model=model_id, image=File(payload=__import__("io").BytesIO(png), file_name="x.png")))
        assert refused.status_code == 401 and refused.parsed.error == "HTTPError"


# ------------------------------------------------------------------------------------------------ slow clients
class _server:
    """``python -m core serve`` on a free localhost port with these settings; its base URL."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = _free_port()
        full = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        self.proc = subprocess.Popen([sys.executable, "-m", "core", "serve", "--port", str(self.port)], cwd=ROOT,
                                     env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def __enter__(self) -> str:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if b"200 OK" in s.recv(1024):
                        return f"http://127.0.0.1:{self.port}"
            except OSError:
                time.sleep(0.3)
        raise AssertionError("the server did not start")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.out = self.proc.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.out = self.proc.communicate()[0]
        assert "Traceback" not in self.out, self.out


def _raw(port: int, data: bytes, wait: float) -> bytes:
    """Send ``data``, then read what the server answers within ``wait`` seconds (b"" if it closed silently)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(data)
        chunks = []
        try:
            while chunk := s.recv(4096):
                chunks.append(chunk)
        except socket.timeout:
            chunks.append(b"<still open>")
        return b"".join(chunks)


def test_slow_clients_meet_deadlines_the_token_comes_before_the_body_and_connections_are_capped(tiny_model_dir):
    env = {"XAI_API_TOKEN": "s3cret", "XAI_API_HEADER_SECONDS": "1", "XAI_API_BODY_SECONDS": "1",
           "XAI_API_MAX_CONNECTIONS": "3"}
    with _server(env) as base:
        port = int(base.rsplit(":", 1)[1])
        # headers trickled and never finished: closed after the header deadline, with or without the token
        t0 = time.perf_counter()
        assert _raw(port, b"POST /predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n", 5) == b""
        assert time.perf_counter() - t0 < 4
        # a body that stops coming: 408 at the body deadline
        head = (b"POST /predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\nContent-Type: multipart/form-data;"
                b" boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n")
        answer = _raw(port, head, 5)
        assert answer.startswith(b"HTTP/1.1 408") and b'"error"' in answer, answer[:300]
        # no token: 401 at once, before any of the announced 10 MB body is read
        t0 = time.perf_counter()
        answer = _raw(port, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                            b"Content-Length: 10000000\r\n\r\n", 5)
        assert answer.startswith(b"HTTP/1.1 401") and time.perf_counter() - t0 < 2, answer[:300]
        # more connections than the limit: the extra one is answered 503
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        try:
            answer = _raw(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", 5)
            assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
        finally:
            for s in idle:
                s.close()
        time.sleep(1.5)  # the idle ones are closed by the server as well
        assert _raw(port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5).startswith(b"HTTP/1.1 200")
