"""How library errors become HTTP answers: JSON ``{"detail": message, "error": type}`` with a 4xx status by error
class; anything unexpected is a 500 that names a log id, never a traceback (the traceback is logged)."""
from __future__ import annotations

import logging
import uuid

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException  # FastAPI's subclasses it; the router's own 404 and 405 raise this

from core import errors
from core.jobs import QueueFull

log = logging.getLogger("xai.api")

#: HTTP status per library error class (the most specific class first)
STATUS: list[tuple[type[Exception], int]] = [
    (errors.ImageTooLarge, 413),
    (errors.ImageError, 422),
    (errors.NotApplicableError, 422),
    (errors.RunRefused, 422),  # a slow method over a whole split: ask for a sample
    (errors.ParameterError, 422),
    (errors.UnknownNameError, 404),
    (errors.DatasetError, 409),  # the dataset's files are not on the server
    (errors.TrainingError, 409),  # e.g. an ImageNet model whose weights are not on the server
    (errors.CheckpointError, 409),  # a broken model folder
    (errors.AttributionError, 422),  # the method failed on this input
    (errors.Cancelled, 409),
    (errors.RunError, 409),  # the run's folder holds another run, or is incomplete
    (errors.XaiError, 400),
]


class SyncTimeout(errors.XaiError):
    """A synchronous call ran past the server's time limit (it was cancelled)."""


class ServerBusy(errors.XaiError):
    """Too many computations are waiting already; ``retry_after`` seconds is a fair wait."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ImportRefused(errors.XaiError):
    """An uploaded model that cannot be imported: not a readable model file, a pickled whole model, a format whose
    optional package is missing, an unsafe archive, or a card that contradicts the model (``POST /models``)."""


class ModelExists(errors.XaiError):
    """A model of that id exists already (or the id is one of torchvision's ImageNet models) and ``replace`` was not
    asked for."""


class ModelTooLarge(errors.XaiError):
    """An uploaded model over ``XAI_MAX_MODEL_MIB``."""


class CheckFailed(errors.XaiError):
    """The check before saving an import warned and ``strict`` was asked for: nothing was saved."""


#: statuses of the server's own refusals, checked before :data:`STATUS`
OWN: list[tuple[type[Exception], int]] = [(SyncTimeout, 504), (ServerBusy, 503), (QueueFull, 429), (ImportRefused, 400),
                                          (ModelExists, 409), (ModelTooLarge, 413), (CheckFailed, 422)]


def status_of(exc: Exception) -> int:
    return next(code for cls, code in OWN + STATUS if isinstance(exc, cls))


def public(text: str) -> str:
    """``text`` with the server's own folders named as the project names them (``data/medmnist``, not the
    absolute path): a remote client learns nothing of the server's file system from an answer."""
    import os

    from core import config

    roots = [(config.data_dir(), "data"), (config.models_dir(), "models"), (config.runs_dir(), "runs"),
             (config.jobs_dir(), "jobs"), (os.environ.get("TORCH_HOME") or os.path.expanduser("~/.cache/torch"),
                                           "$TORCH_HOME"), (config.ROOT, "."), (os.path.expanduser("~"), "~")]
    for folder, name in sorted(((str(f), n) for f, n in roots if str(f) not in ("", "/", ".")),
                               key=lambda r: -len(r[0])):  # the most specific folder first
        text = text.replace(folder, name)
    return text


def error_response(code: int, detail: str, kind: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": public(detail), "error": kind}, status_code=code, headers=headers)


async def library_error(request: Request, exc: errors.XaiError) -> JSONResponse:
    code = status_of(exc)
    log.warning("%s %s -> %d %s: %s", request.method, request.url.path, code, type(exc).__name__, exc)
    retry = getattr(exc, "retry_after", None)
    return error_response(code, str(exc), type(exc).__name__, None if retry is None else {"Retry-After": str(retry)})


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    code, detail, kind = exc.status_code, str(exc.detail), "HTTPError"
    if code == 400 and exc.__cause__ is not None:  # FastAPI could not parse the body (e.g. JSON nested too deep)
        cause = exc.__cause__
        why = "it is nested too deeply" if isinstance(cause, RecursionError) else type(cause).__name__
        code, detail, kind = 422, f"the request body cannot be parsed: {why}", "ValidationError"
    log.warning("%s %s -> %d: %s", request.method, request.url.path, code, detail)
    return error_response(code, detail, kind, getattr(exc, "headers", None))


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}" for e in exc.errors())
    log.warning("%s %s -> 422: %s", request.method, request.url.path, detail)
    return error_response(422, detail, "ValidationError")


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    ref = uuid.uuid4().hex[:12]
    log.error("%s %s -> 500 (log id %s)", request.method, request.url.path, ref, exc_info=exc)
    return error_response(500, f"internal error (log id {ref}); the server log has the details", "InternalError")


#: exception class -> handler, installed by :func:`core.faces.api.app.create_app`
HANDLERS = {errors.XaiError: library_error, HTTPException: http_error, RequestValidationError: validation_error,
            Exception: unexpected}
