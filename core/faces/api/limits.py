"""The API's bounds and access: settings from the environment, the request size limit (pure ASGI, before anything
is parsed) and the bearer-token check."""
from __future__ import annotations

import os
import secrets

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core.datasets.images import MAX_PIXELS, MAX_UPLOAD_BYTES
from core.faces.api.http_errors import error_response


class Limits:
    """``XAI_API_TOKEN``, ``XAI_API_CORS_ORIGINS``, ``XAI_API_SYNC_SECONDS``, ``XAI_API_MAX_BODY_MIB`` and
    ``XAI_API_CONCURRENCY``, read once when the app is created."""

    def __init__(self) -> None:
        self.token = os.environ.get("XAI_API_TOKEN") or None
        self.cors = [o.strip() for o in os.environ.get("XAI_API_CORS_ORIGINS", "").split(",") if o.strip()]
        self.sync_seconds = float(os.environ.get("XAI_API_SYNC_SECONDS", "60"))
        self.max_upload = MAX_UPLOAD_BYTES
        self.max_pixels = MAX_PIXELS
        self.max_body = int(float(os.environ.get("XAI_API_MAX_BODY_MIB", MAX_UPLOAD_BYTES / 2**20 + 1)) * 2**20)
        #: model computations at once (the others wait, within the time limit): more than the cores only adds memory
        self.compute_slots = int(os.environ.get("XAI_API_CONCURRENCY", max(2, os.cpu_count() or 2)))


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


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
            response = error_response(413, f"the request is {mib(int(length))}; the limit is {mib(self.limit)}",
                                      "RequestTooLarge")
            return await response(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:  # FastAPI passes an HTTPException from body parsing through unchanged
                    raise HTTPException(413, f"the request is over the {mib(self.limit)} limit")
            return message

        await self.app(scope, counted, send)


_bearer = HTTPBearer(auto_error=False)


def authorised(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    """The dependency every guarded route takes: the bearer token, when the server has one."""
    token = request.app.state.limits.token
    if token is None:
        return
    if creds is None or not secrets.compare_digest(creds.credentials.encode(), token.encode()):
        raise HTTPException(401, "a bearer token is required: send 'Authorization: Bearer <XAI_API_TOKEN>'",
                            headers={"WWW-Authenticate": "Bearer"})


GUARDED = [Depends(authorised)]
