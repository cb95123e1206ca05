"""The API's bounds and access: settings from the environment, the gate every request passes before anything is
parsed (the token, the request's size and its body's deadline; pure ASGI), the deadline for a request's headers
(uvicorn has none), and the bearer-token check the routes declare (so the OpenAPI schema shows it)."""
from __future__ import annotations

import asyncio
import os
import secrets

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core import config
from core.datasets.images import MAX_PIXELS, MAX_UPLOAD_BYTES
from core.faces.api.http_errors import error_response
from core.importers.uploads import max_model_bytes


def _env(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


class Limits:
    """Settings read once when the app is created (the README's API section lists them with their defaults)."""

    def __init__(self) -> None:
        self.token = os.environ.get("XAI_API_TOKEN") or None
        self.cors = [o.strip() for o in os.environ.get("XAI_API_CORS_ORIGINS", "").split(",") if o.strip()]
        self.sync_seconds = _env("XAI_API_SYNC_SECONDS", 60)
        self.max_upload = MAX_UPLOAD_BYTES
        self.max_pixels = MAX_PIXELS
        self.max_body = int(_env("XAI_API_MAX_BODY_MIB", MAX_UPLOAD_BYTES / 2**20 + 1) * 2**20)
        #: an uploaded model (``POST /models``): the file at most ``XAI_MAX_MODEL_MIB``; its request may carry that
        #: plus one ordinary request's worth (the form fields and the check images), and has longer to arrive
        self.max_model = max_model_bytes()
        self.max_model_body = self.max_model + self.max_body
        self.model_body_seconds = _env("XAI_API_MODEL_BODY_SECONDS", 600)
        #: model computations at once: more than the cores only adds memory (and each may decode a large image)
        self.compute_slots = int(_env("XAI_API_CONCURRENCY", max(2, os.cpu_count() or 2)))
        #: model loads and image decodes at once (a 40 Mpixel image costs hundreds of MiB while it is decoded)
        self.decode_slots = int(_env("XAI_API_DECODES", 2))
        #: calls waiting for a compute (or decode) thread before requests are answered 503
        self.max_waiting = int(_env("XAI_API_MAX_WAITING", 32))
        #: jobs waiting for a worker before submissions are answered 429
        self.max_queued_jobs = int(_env("XAI_API_MAX_QUEUED_JOBS", 32))
        self.jobs_dir = config.jobs_dir()
        self.jobs_max_bytes = int(_env("XAI_API_JOBS_MAX_MIB", 512) * 2**20)
        self.jobs_max_age = _env("XAI_API_JOBS_MAX_HOURS", 24) * 3600
        #: seconds for a request's headers, and for its whole body once it has begun
        self.header_seconds = _env("XAI_API_HEADER_SECONDS", 10)
        self.body_seconds = _env("XAI_API_BODY_SECONDS", 60)
        #: open connections at most (uvicorn answers 503 beyond)
        self.max_connections = int(_env("XAI_API_MAX_CONNECTIONS", 64))


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


OPEN_PATHS = frozenset({"/health"})
#: requests that upload a model: their own size limit and body deadline (every other request has the ordinary ones)
MODEL_UPLOADS = frozenset({("POST", "/models")})
TOKEN_HELP = "a bearer token is required: send 'Authorization: Bearer <XAI_API_TOKEN>'"


def token_ok(header: bytes | str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token`` as a bearer token (compared in constant time)."""
    if isinstance(header, bytes):
        header = header.decode("latin-1")
    scheme, _, value = (header or "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(value.strip().encode(), token.encode())


class Gate:
    """What every request passes before anything reads it (pure ASGI, so nothing is buffered): the token, checked
    on the headers before the body is read; the size limit, by Content-Length and by counting a body sent without
    one (chunked); and the body's deadline, from its first byte asked for to its last (a trickled body is a 408).
    A model upload (:data:`MODEL_UPLOADS`) has its own limit and deadline; every other request the ordinary ones."""

    def __init__(self, app, limits: Limits) -> None:
        self.app, self.limits = app, limits

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        lim = self.limits
        if lim.token and scope["path"] not in OPEN_PATHS and scope["method"] != "OPTIONS" \
                and not token_ok(headers.get(b"authorization"), lim.token):
            response = error_response(401, TOKEN_HELP, "HTTPError", {"WWW-Authenticate": "Bearer"})
            return await response(scope, receive, send)
        model = (scope["method"], scope["path"]) in MODEL_UPLOADS
        max_body, seconds = (lim.max_model_body, lim.model_body_seconds) if model else (lim.max_body, lim.body_seconds)
        what = f" (a model of at most {mib(lim.max_model)}, XAI_MAX_MODEL_MIB, and its form)" if model else ""
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > max_body:
            response = error_response(413, f"the request is {mib(int(length))}; the limit is {mib(max_body)}{what}",
                                      "RequestTooLarge")
            return await response(scope, receive, send)
        seen, deadline = 0, None
        loop = asyncio.get_running_loop()

        async def bounded():
            nonlocal seen, deadline
            deadline = deadline or loop.time() + seconds
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:  # FastAPI passes an HTTPException from body parsing through unchanged
                raise HTTPException(408, f"the request body did not arrive within {seconds:g} s") from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_body:
                    raise HTTPException(413, f"the request is over the {mib(max_body)} limit{what}")
            return message

        await self.app(scope, bounded, send)


def header_deadline_protocol(seconds: float):
    """uvicorn's h11 protocol with a deadline for each request's headers: a connection that has not sent a whole
    request head within ``seconds`` of opening (or of its previous response) is closed. uvicorn has no such
    setting; without it a client that trickles its headers holds a connection for ever."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderDeadline(H11Protocol):
        def _arm(self) -> None:
            self.loop.call_later(seconds, self._expire, self.cycle)

        def _expire(self, cycle) -> None:
            if self.cycle is cycle and not self.transport.is_closing():  # no new request head since armed
                self.transport.close()

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

    return HeaderDeadline


_bearer = HTTPBearer(auto_error=False)


def authorised(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    """The dependency every guarded route takes: the bearer token, when the server has one (the :class:`Gate` has
    already refused requests without it; this declares the scheme in the OpenAPI schema)."""
    token = request.app.state.limits.token
    if token is not None and (creds is None or not token_ok(f"Bearer {creds.credentials}", token)):
        raise HTTPException(401, TOKEN_HELP, headers={"WWW-Authenticate": "Bearer"})


GUARDED = [Depends(authorised)]
