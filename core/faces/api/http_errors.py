"""How library errors become HTTP answers: JSON ``{"detail": message, "error": type}`` with a 4xx status by error
class; anything unexpected is a 500 that names a log id, never a traceback (the traceback is logged)."""
from __future__ import annotations

import logging
import uuid

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from core import errors

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


def status_of(exc: Exception) -> int:
    return 504 if isinstance(exc, SyncTimeout) else next(code for cls, code in STATUS if isinstance(exc, cls))


def error_response(code: int, detail: str, kind: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail, "error": kind}, status_code=code, headers=headers)


async def library_error(request: Request, exc: errors.XaiError) -> JSONResponse:
    code = status_of(exc)
    log.warning("%s %s -> %d %s: %s", request.method, request.url.path, code, type(exc).__name__, exc)
    return error_response(code, str(exc), type(exc).__name__)


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    log.warning("%s %s -> %d: %s", request.method, request.url.path, exc.status_code, exc.detail)
    return error_response(exc.status_code, str(exc.detail), "HTTPError", getattr(exc, "headers", None))


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
