"""The REST API: predictions and explanations over HTTP for programs (a hospital viewer, a notebook, a teaching
page), beside the dashboard for people. It calls the same ``core`` functions on the same model folders, quality
caches and out-of-distribution statistics; it adds transport, limits, authentication and jobs, nothing else.

    python -m core serve [--host 127.0.0.1] [--port 8000]       # or: make api;  docs at /docs

Settings (environment, read by :func:`create_app`): ``XAI_API_TOKEN`` (a bearer token every endpoint but
``/health`` then requires), ``XAI_API_CORS_ORIGINS`` (comma-separated origins; none by default: closed),
``XAI_API_SYNC_SECONDS`` (time limit of a synchronous call, 60), ``XAI_API_MAX_BODY_MIB`` (request size limit,
the upload limit plus 1 MiB).

Errors are JSON ``{"detail": message, "error": type}`` with the library's own message and a 4xx status by error
class; anything unexpected is a 500 that names a log id, never a traceback (the traceback is logged).
"""
from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import os
import secrets
import threading
import time
import uuid
import zlib
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from . import config, errors
from .cancel import CancelToken
from .images import MAX_PIXELS, MAX_UPLOAD_BYTES

log = logging.getLogger("xai.api")

#: HTTP status per library error class (the most specific class first)
STATUS: list[tuple[type[Exception], int]] = [
    (errors.ImageTooLarge, 413),
    (errors.ImageError, 422),
    (errors.NotApplicableError, 422),
    (errors.ParameterError, 422),
    (errors.UnknownNameError, 404),
    (errors.DatasetError, 409),  # the dataset's files are not on the server
    (errors.TrainingError, 409),  # e.g. an ImageNet model whose weights are not on the server
    (errors.CheckpointError, 409),  # a broken model folder
    (errors.AttributionError, 422),  # the method failed on this input
    (errors.Cancelled, 409),
    (errors.XaiError, 400),
]


def status_of(exc: Exception) -> int:
    return next(code for cls, code in STATUS if isinstance(exc, cls))


class SyncTimeout(errors.XaiError):
    """A synchronous call ran past the server's time limit (it was cancelled)."""


# ------------------------------------------------------------------------------------------------ response models
class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Version(BaseModel):
    project: str
    python: str
    libraries: dict[str, str]
    device: str


class ModelSummary(BaseModel):
    id: str
    dataset: str
    arch: str
    classes: int
    input_size: int
    channels: int
    source: Literal["trained", "torchvision"]
    test_accuracy: float | None = Field(None, description="measured on the dataset's test split (trained models)")
    published_top1: float | None = Field(None, description="ImageNet-1K acc@1 published by torchvision (percent)")
    weights_present: bool
    ood_statistics: bool = Field(description="uploads get an out-of-distribution check")


class ModelDetail(ModelSummary):
    card: dict[str, Any]
    metrics: dict[str, Any] = Field(description="test metrics, per-class metrics and the confusion matrix, where known")
    warnings: list[str] = Field(description="reasons not to trust this model's predictions")


class ParamInfo(BaseModel):
    name: str
    kind: str
    default: Any
    min: float | None = None
    max: float | None = None
    choices: list[str] = []
    help: str
    when: list[str] | None = None


class MethodInfo(BaseModel):
    name: str
    title: str
    family: str
    description: str
    paper: str
    params: list[ParamInfo]
    stochastic: bool
    signed: bool
    class_specific: bool = Field(description="false: the same map for every class (attention rollout)")
    units: str
    requires: dict[str, str] = Field(description="architecture traits the method needs, with the reason")


class DatasetInfo(BaseModel):
    name: str
    title: str
    classes: list[str]
    channels: int
    image_size: int
    splits: list[str]
    state: str
    detail: str


class TopK(BaseModel):
    index: int
    name: str
    probability: float


class Ood(BaseModel):
    score: float
    threshold: float
    flagged: bool
    message: str


class Prediction(BaseModel):
    model: str
    image: dict[str, Any]
    prediction: int
    prediction_name: str
    probabilities: list[float] = Field(description="one per class, in the model card's class order")
    top_k: list[TopK]
    ood: Ood | None = Field(None, description="out-of-distribution verdict (uploads to models with statistics)")
    saturated: bool
    warnings: list[str]


class ArrayData(BaseModel):
    shape: list[int]
    dtype: Literal["float32"] = "float32"
    encoding: Literal["zlib+base64"] = "zlib+base64"
    data: str = Field(description="base64 of the zlib-compressed little-endian float32 values, row-major")


class MethodResult(BaseModel):
    method: str
    title: str
    target: int
    target_name: str
    params: dict[str, Any] = Field(description="every parameter used, defaults and seeds included")
    seconds: float
    signed: bool
    flat: bool
    extras: dict[str, Any]
    attribution: ArrayData
    npy_base64: str | None = Field(None, description="the map as .npy bytes, base64 (with npy=true)")
    overlay_png_base64: str
    quality: dict[str, dict[str, float]] = Field(description="quality numbers already computed for this model and "
                                                             "method: metric -> {mean, n}")


class Explanation(BaseModel):
    model: str
    image: dict[str, Any]
    prediction: int
    prediction_name: str
    results: list[MethodResult]
    warnings: list[str]


class Job(BaseModel):
    id: str
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    done: int = Field(description="model images evaluated so far")
    total: int
    seconds_left: float | None
    result: Explanation | None = None
    error: str | None = None


class Error(BaseModel):
    detail: str
    error: str


# ------------------------------------------------------------------------------------------------ helpers
def encode_array(a: np.ndarray) -> ArrayData:
    a = np.ascontiguousarray(a, dtype="<f4")
    return ArrayData(shape=list(a.shape), data=base64.b64encode(zlib.compress(a.tobytes(), 6)).decode())


def decode_array(d: dict[str, Any] | ArrayData) -> np.ndarray:
    """The inverse of :func:`encode_array` (for clients written in Python, and the tests)."""
    d = d if isinstance(d, dict) else d.model_dump()
    return np.frombuffer(zlib.decompress(base64.b64decode(d["data"])), dtype="<f4").reshape(d["shape"])


class Models:
    """Loaded models, shared by every request (a model is only read; methods that change one use replicas)."""

    def __init__(self, size: int = 4) -> None:
        self._lock = threading.Lock()
        self._loaded: OrderedDict[tuple[str, str], tuple[Any, Any]] = OrderedDict()
        self.size = size

    def get(self, model_id: str):
        from .checkpoints import load_model, resolve_model_path

        path, card = model_card(model_id)
        key = (str(resolve_model_path(path)), card.weights_sha256)
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
        loaded = load_model(path)
        with self._lock:
            self._loaded[key] = loaded
            while len(self._loaded) > self.size:
                self._loaded.popitem(last=False)
        return loaded


def model_path(model_id: str) -> Path:
    """The folder of a model id: a name, never a path (nothing outside the models folder is ever read)."""
    from .checkpoints import validate_model_id

    try:
        validate_model_id(model_id)
    except errors.CheckpointError as exc:
        raise errors.ParameterError(str(exc)) from None
    return config.models_dir() / model_id


def model_card(model_id: str):
    """``(folder, card)`` of a model id; an id with no model is an :class:`UnknownNameError` (404)."""
    from .checkpoints import read_card

    path = model_path(model_id)
    try:
        return path, read_card(path)
    except errors.CheckpointError as exc:
        if not path.exists():
            raise errors.UnknownNameError(f"Unknown model {model_id!r}; GET /models lists them") from exc
        raise


def _all_cards():
    from .checkpoints import list_models
    from .pretrained import IMAGENET

    return list_models() + list_models(dataset=IMAGENET)


def _summary(path: Path, card) -> dict[str, Any]:
    imagenet = card.from_torchvision
    return dict(id=card.id, dataset=card.dataset, arch=card.arch, classes=len(card.classes), input_size=card.input_size,
                channels=card.channels, source="torchvision" if imagenet else "trained",
                test_accuracy=card.metrics.get("accuracy"),
                published_top1=(card.training.get("published_imagenet_1k") or {}).get("acc@1"),
                weights_present=bool(card.weights_sha256), ood_statistics=(Path(path) / "ood.npz").is_file())


class Limits:
    def __init__(self) -> None:
        self.token = os.environ.get("XAI_API_TOKEN") or None
        self.cors = [o.strip() for o in os.environ.get("XAI_API_CORS_ORIGINS", "").split(",") if o.strip()]
        self.sync_seconds = float(os.environ.get("XAI_API_SYNC_SECONDS", "60"))
        self.max_upload = MAX_UPLOAD_BYTES
        self.max_pixels = MAX_PIXELS
        self.max_body = int(float(os.environ.get("XAI_API_MAX_BODY_MIB", MAX_UPLOAD_BYTES / 2**20 + 1)) * 2**20)
        #: model computations at once (the others wait, within the time limit): more than the cores only adds memory
        self.compute_slots = int(os.environ.get("XAI_API_CONCURRENCY", max(2, os.cpu_count() or 2)))


class BodyLimit:
    """A request size limit before anything is parsed: by Content-Length, and by counting a body sent without one
    (chunked). Pure ASGI, so nothing is buffered."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            response = _error(413, f"the request is {_mib(int(length))}; the limit is {_mib(self.limit)}",
                              "RequestTooLarge")
            return await response(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:  # FastAPI passes an HTTPException from body parsing through unchanged
                    raise HTTPException(413, f"the request is over the {_mib(self.limit)} limit")
            return message

        await self.app(scope, counted, send)


class Jobs:
    """Explanations run in the background: progress, the result, cancel. Bounded: the oldest finished jobs are
    forgotten beyond ``keep``; ``workers`` jobs run at once, the others queue."""

    def __init__(self, workers: int = 1, keep: int = 200) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="xai-job")
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.keep = keep

    def submit(self, work) -> str:
        job_id = uuid.uuid4().hex
        token = CancelToken()
        job = {"id": job_id, "state": "queued", "done": 0, "total": 0, "started": None, "result": None,
               "error": None, "token": token}

        def progress(done: int, total: int) -> None:
            job["done"], job["total"] = int(done), int(total)

        def run() -> None:
            if token.cancelled:
                job["state"] = "cancelled"
                return
            job["state"], job["started"] = "running", time.monotonic()
            try:
                job["result"] = work(progress, token)
                job["state"] = "done"
            except errors.Cancelled:
                job["state"] = "cancelled"
            except errors.XaiError as exc:
                job["state"], job["error"] = "failed", str(exc)
            except Exception:  # logged in full; the client gets the log id
                ref = uuid.uuid4().hex[:12]
                log.exception("job %s failed (log id %s)", job_id, ref)
                job["state"], job["error"] = "failed", f"internal error (log id {ref})"

        with self._lock:
            self._jobs[job_id] = job
            finished = [k for k, j in self._jobs.items() if j["state"] in ("done", "failed", "cancelled")]
            for k in finished[: max(0, len(self._jobs) - self.keep)]:
                del self._jobs[k]
        self._pool.submit(run)
        return job_id

    def get(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise errors.UnknownNameError(f"Unknown job {job_id!r} (finished jobs are kept for a while, not forever)")
        return job

    def cancel(self, job_id: str) -> dict[str, Any]:
        job = self.get(job_id)
        job["token"].cancel()
        if job["state"] == "queued":
            job["state"] = "cancelled"
        return job

    def view(self, job: dict[str, Any]) -> Job:
        left = None
        if job["state"] == "running" and job["done"] and job["total"]:
            spent = time.monotonic() - job["started"]
            left = spent * (job["total"] - job["done"]) / job["done"]
        return Job(id=job["id"], state=job["state"], done=job["done"], total=job["total"], seconds_left=left,
                   result=job["result"], error=job["error"])

    def shutdown(self) -> None:
        with self._lock:
            for j in self._jobs.values():
                j["token"].cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)


# ------------------------------------------------------------------------------------------------ the app
def create_app() -> FastAPI:
    """The API, configured from the environment (see the module docstring)."""
    limits = Limits()
    models = Models()
    jobs = Jobs()
    # Model work runs on a few fixed threads, not on the request threads: as many at once as there are cores (more
    # only adds memory), and the C allocator's per-thread arenas stay as few as these threads, so the server's
    # memory levels off under load instead of growing with every new request thread (measured: bench --api).
    compute = ThreadPoolExecutor(max_workers=limits.compute_slots, thread_name_prefix="xai-compute")

    def computed(fn, deadline: float):
        """``fn()`` on a compute thread, waited for until ``deadline`` (a synchronous call's time limit)."""
        future = compute.submit(fn)
        try:
            return future.result(timeout=None if deadline == float("inf") else max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            if future.cancel():  # still queued behind others: never started
                raise SyncTimeout(f"the server was busy for the {limits.sync_seconds:g} s limit of a synchronous "
                                  "call; retry later, or send async=true to run it as a job") from None
            return future.result()  # running: its cancel token stops it at the next check
    bearer = HTTPBearer(auto_error=False)

    def authorised(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if limits.token is None:
            return
        if creds is None or not secrets.compare_digest(creds.credentials.encode(), limits.token.encode()):
            raise HTTPException(401, "a bearer token is required: send 'Authorization: Bearer <XAI_API_TOKEN>'",
                                headers={"WWW-Authenticate": "Bearer"})

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        jobs.shutdown()  # running jobs are cancelled at their next check
        compute.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="XAI dashboard API", version=_project_version(), lifespan=lifespan,
                  description="Predictions and explanations of the dashboard's models, for programs. Every error is "
                              "JSON {detail, error} with a 4xx status for bad input.",
                  docs_url=None if limits.token else "/docs",
                  redoc_url=None, openapi_url=None if limits.token else "/openapi.json")
    app.state.limits, app.state.models, app.state.jobs = limits, models, jobs
    if limits.token:  # the documentation too is for token holders; served behind the same check
        from fastapi.openapi.docs import get_swagger_ui_html

        @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(authorised)])
        def openapi_json():
            return JSONResponse(app.openapi())

        @app.get("/docs", include_in_schema=False, dependencies=[Depends(authorised)])
        def docs():
            return get_swagger_ui_html(openapi_url="/openapi.json", title=app.title)
    if limits.cors:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=limits.cors, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])

    app.add_middleware(BodyLimit, limit=limits.max_body)

    @app.exception_handler(errors.XaiError)
    async def xai_error(request: Request, exc: errors.XaiError):
        code = 504 if isinstance(exc, SyncTimeout) else status_of(exc)
        log.warning("%s %s -> %d %s: %s", request.method, request.url.path, code, type(exc).__name__, exc)
        return _error(code, str(exc), type(exc).__name__)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        log.warning("%s %s -> %d: %s", request.method, request.url.path, exc.status_code, exc.detail)
        return _error(exc.status_code, str(exc.detail), "HTTPError", getattr(exc, "headers", None))

    from fastapi.exceptions import RequestValidationError

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}" for e in exc.errors())
        log.warning("%s %s -> 422: %s", request.method, request.url.path, detail)
        return _error(422, detail, "ValidationError")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        ref = uuid.uuid4().hex[:12]
        log.error("%s %s -> 500 (log id %s)", request.method, request.url.path, ref, exc_info=exc)
        return _error(500, f"internal error (log id {ref}); the server log has the details", "InternalError")

    guarded = [Depends(authorised)]

    @app.get("/health", response_model=Health, tags=["service"])
    def health() -> Health:
        return Health()

    @app.get("/version", response_model=Version, dependencies=guarded, tags=["service"])
    def version() -> Version:
        import platform

        from .report import library_versions

        libs = library_versions()
        from importlib import metadata

        for name in ("fastapi", "uvicorn", "streamlit"):
            try:
                libs[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                libs[name] = "not installed"
        return Version(project=_project_version(), python=platform.python_version(), libraries=libs,
                       device=str(config.pick_device()))

    @app.get("/models", response_model=list[ModelSummary], dependencies=guarded, tags=["models"])
    def list_models_() -> list[ModelSummary]:
        return [ModelSummary(**_summary(p, c)) for p, c in _all_cards()]

    @app.get("/models/{model_id}", response_model=ModelDetail, dependencies=guarded, tags=["models"],
             responses={404: {"model": Error}})
    def model_detail(model_id: str) -> ModelDetail:
        from .trust import model_warnings

        path, card = model_card(model_id)
        metrics = dict(card.metrics)
        saved = path / "metrics.json"
        if saved.is_file():
            try:
                metrics = {**metrics, **json.loads(saved.read_text())}
            except (OSError, ValueError):
                pass
        return ModelDetail(**_summary(path, card), card=card.to_dict(), metrics=_jsonable(metrics),
                           warnings=model_warnings(card))

    @app.get("/methods", response_model=list[MethodInfo], dependencies=guarded, tags=["methods"])
    def methods() -> list[MethodInfo]:
        from .explainers import get_method, list_methods

        out = []
        for m in list_methods():
            cls = get_method(m)
            out.append(MethodInfo(
                name=m, title=cls.title, family=cls.family, description=cls.description, paper=cls.paper,
                params=[ParamInfo(name=p.name, kind=p.kind, default=p.default, min=p.min, max=p.max,
                                  choices=list(p.choices), help=p.help, when=list(p.when) if p.when else None)
                        for p in cls.params],
                stochastic=cls.stochastic, signed=cls.signed, class_specific=cls.class_specific, units=cls.units,
                requires=dict(cls.requires)))
        return out

    @app.get("/datasets", response_model=list[DatasetInfo], dependencies=guarded, tags=["datasets"])
    def datasets() -> list[DatasetInfo]:
        from .datasets import dataset_info, dataset_status, list_datasets

        out = []
        for n in list_datasets():
            info, st = dataset_info(n), dataset_status(n)
            out.append(DatasetInfo(name=n, title=info.title, classes=list(info.classes), channels=info.channels or 0,
                                   image_size=info.image_size, splits=list(info.splits), state=st.state,
                                   detail=st.detail))
        return out

    @app.get("/datasets/{name}/{split}/{index}", dependencies=guarded, tags=["datasets"],
             responses={200: {"content": {"image/png": {}}}, 404: {"model": Error}, 409: {"model": Error}},
             response_class=Response)
    def dataset_image(name: str, split: Literal["train", "val", "test"], index: int) -> Response:
        from .render import png_bytes

        ds = _dataset(name, split, None)
        if not 0 <= index < len(ds):
            raise errors.ParameterError(f"index must be in [0, {len(ds) - 1}] for {name} {split}, got {index}")
        label = int(ds.labels[index])
        return Response(png_bytes(ds.image(index)), media_type="image/png",
                        headers={"X-Label": str(label), "X-Label-Name": ds.classes[label]})

    def read_image(image: UploadFile | None, card, dataset: str | None, split: str, index: int | None):
        """The model input (C, H, W), the display array, a JSON reference to the image, and its label."""
        from .checkpoints import check_dataset_fits
        from .images import preprocess_for, read_upload

        if image is not None:
            data = image.file.read(limits.max_upload + 1)
            img = read_upload(data, limits.max_upload, limits.max_pixels)
            x, display = preprocess_for(img, card)
            import hashlib

            return x, display, {"upload": image.filename, "sha256": hashlib.sha256(data).hexdigest()}, None
        if index is None:
            raise errors.ParameterError("send an image (multipart field 'image') or a dataset reference "
                                        "(fields 'index', and optionally 'dataset' and 'split')")
        ds = _dataset(dataset or card.dataset, split, card.input_size)
        check_dataset_fits(card, ds.info.name, ds.classes, ds.images.shape[-1])
        if not 0 <= index < len(ds):
            raise errors.ParameterError(f"index must be in [0, {len(ds) - 1}] for {ds.info.name} {split}, got {index}")
        x, label = ds[index]
        return x, ds.image(index), {"dataset": ds.info.name, "split": split, "index": index}, int(label)

    def _dataset(name: str, split: str, size: int | None):
        from .datasets import load_dataset

        return _cached_dataset(name, split, size, load_dataset)

    @app.post("/predict", response_model=Prediction, dependencies=guarded, tags=["predict"],
              responses={404: {"model": Error}, 409: {"model": Error}, 413: {"model": Error}, 422: {"model": Error},
                         504: {"model": Error}})
    def predict(model: str = Form(..., description="model id (GET /models)"),
                image: UploadFile | None = File(None, description="an image file (PNG, JPEG, TIFF, BMP, WebP)"),
                dataset: str | None = Form(None), split: Literal["train", "val", "test"] = Form("test"),
                index: int | None = Form(None), top_k: int = Form(5, ge=1, le=1000)) -> Prediction:
        from .prediction import predict_proba
        from .trust import model_warnings, ood_check, saturated

        deadline = time.monotonic() + limits.sync_seconds
        m, card = models.get(model)
        x, _, ref, _ = read_image(image, card, dataset, split, index)
        proba, ood = computed(lambda: (predict_proba(m, x[None])[0], ood_check(m, config.models_dir() / model, x[None])
                                       if image is not None else None), deadline)
        return _prediction(model, card, ref, proba, top_k, ood, model_warnings(card), saturated(float(proba.max())))

    @app.post("/explain", response_model=Explanation | Job, dependencies=guarded, tags=["explain"],
              responses={202: {"model": Job}, 404: {"model": Error}, 409: {"model": Error}, 413: {"model": Error},
                         422: {"model": Error}, 504: {"model": Error}})
    def explain_(model: str = Form(...), methods: str = Form("grad_cam", description="comma-separated method names"),
                 params: str = Form("{}", description='JSON: {"method": {"name": value}}'),
                 target: int | None = Form(None, description="class index (default: the predicted class)"),
                 image: UploadFile | None = File(None), dataset: str | None = Form(None),
                 split: Literal["train", "val", "test"] = Form("test"), index: int | None = Form(None),
                 npy: bool = Form(False, description="also return each map as .npy bytes (base64)"),
                 run_as_job: bool = Form(False, alias="async",
                                         description="run as a job: 202 with its id; GET /jobs/{id} for the result")):
        from .explainers import get_method
        from .explainers.engine import resolve_params

        m, card = models.get(model)
        names = [s.strip() for s in methods.split(",") if s.strip()]
        if not names:
            raise errors.ParameterError("name at least one method (GET /methods lists them)")
        try:
            given = json.loads(params)
        except ValueError as exc:
            raise errors.ParameterError(f"params is not valid JSON: {exc}") from None
        if not isinstance(given, dict) or not all(isinstance(v, dict) for v in given.values()):
            raise errors.ParameterError('params must be a JSON object {"method": {"name": value}}')
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise errors.ParameterError(f"params given for methods not requested: {', '.join(unknown)}")
        for n in names:  # every name, parameter and applicability checked before any work (4xx at once)
            cls = get_method(n)
            resolve_params(n, m, **given.get(n, {}))
            why = cls.unavailable(m)
            if why:
                raise errors.NotApplicableError(f"{cls.title} does not apply to this model: {why}")
        x, display, ref, _ = read_image(image, card, dataset, split, index)
        if target is not None and not 0 <= target < len(card.classes):
            raise errors.ParameterError(f"target must be a class index in [0, {len(card.classes) - 1}], got {target}")

        def work(progress, token, deadline=float("inf")):
            return computed(lambda: _explain(model, m, card, x, display, ref, names, given, target, npy, progress,
                                             token), deadline)

        if run_as_job:
            job_id = jobs.submit(work)
            return JSONResponse(jobs.view(jobs.get(job_id)).model_dump(), status_code=202)
        token = CancelToken()
        timer = threading.Timer(limits.sync_seconds, token.cancel)
        timer.start()
        try:
            return work(None, token, time.monotonic() + limits.sync_seconds)
        except errors.Cancelled:
            raise SyncTimeout(f"the explanation took longer than the {limits.sync_seconds:g} s limit for synchronous "
                              "calls and was stopped; send async=true to run it as a job") from None
        finally:
            timer.cancel()

    @app.get("/jobs/{job_id}", response_model=Job, dependencies=guarded, tags=["explain"],
             responses={404: {"model": Error}})
    def job(job_id: str) -> Job:
        return jobs.view(jobs.get(job_id))

    @app.delete("/jobs/{job_id}", response_model=Job, dependencies=guarded, tags=["explain"],
                responses={404: {"model": Error}})
    def cancel_job(job_id: str) -> Job:
        return jobs.view(jobs.cancel(job_id))

    return app


_datasets_lock = threading.Lock()
_datasets: OrderedDict[tuple, Any] = OrderedDict()


def _cached_dataset(name: str, split: str, size: int | None, load):
    key = (name, split, size, str(config.data_dir()))
    with _datasets_lock:
        if key in _datasets:
            return _datasets[key]
    ds = load(name, split=split, size=size)
    with _datasets_lock:
        _datasets[key] = ds
        while len(_datasets) > 8:
            _datasets.popitem(last=False)
    return ds


def _prediction(model_id, card, ref, proba, top_k, ood, warnings, saturated) -> Prediction:
    top = [int(c) for c in np.argsort(-proba)[:top_k]]
    ood_out = None
    if ood:
        o = ood[0]
        ood_out = Ood(score=o.score, threshold=o.threshold, flagged=o.flagged, message=o.message)
    return Prediction(model=model_id, image=ref, prediction=top[0], prediction_name=card.classes[top[0]],
                      probabilities=[float(p) for p in proba],
                      top_k=[TopK(index=c, name=card.classes[c], probability=float(proba[c])) for c in top],
                      ood=ood_out, saturated=saturated, warnings=warnings)


def _explain(model_id, model, card, x, display, ref, names, given, target, npy, progress, token) -> Explanation:
    from .explainers import explain_batch
    from .prediction import predict_proba
    from .quality import known_numbers
    from .render import attribution_overlay, png_bytes, to_rgb_uint8, upscale
    from .trust import model_warnings

    proba = predict_proba(model, x[None])[0]
    pred = int(proba.argmax())
    total = [0] * len(names)
    results = []
    base = to_rgb_uint8(display)
    if base.shape[0] < 128:
        base = upscale(base, max(1, 192 // base.shape[0]))
    for k, name in enumerate(names):
        def step(done, t, k=k):
            total[k] = t
            if progress:
                progress(sum(total[:k]) + done, sum(total[:k]) + t)

        e = explain_batch(model, x[None], name, targets=pred if target is None else target, progress=step,
                          cancel=token, **given.get(name, {}))[0]
        buf = None
        if npy:
            bio = io.BytesIO()
            np.save(bio, e.attribution)
            buf = base64.b64encode(bio.getvalue()).decode()
        overlay = attribution_overlay(base, e.attribution, signed=e.signed)
        quality = known_numbers(config.models_dir() / model_id / "quality", name)
        results.append(MethodResult(
            method=name, title=e.title, target=e.target, target_name=card.classes[e.target], params=_jsonable(e.params),
            seconds=e.seconds, signed=e.signed, flat=e.flat, extras=_jsonable(e.extras),
            attribution=encode_array(e.attribution), npy_base64=buf,
            overlay_png_base64=base64.b64encode(png_bytes(overlay)).decode(),
            quality={m: {"mean": v, "n": n} for m, (v, n) in quality.items()}))
    return Explanation(model=model_id, image=ref, prediction=pred, prediction_name=card.classes[pred], results=results,
                       warnings=model_warnings(card))


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _error(code: int, detail: str, kind: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail, "error": kind}, status_code=code, headers=headers)


def _project_version() -> str:
    return "0.13.0"


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the API with uvicorn (one process; requests run in its thread pool)."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(), host=host, port=port, log_level="info", proxy_headers=True,
                forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"))
