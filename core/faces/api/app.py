"""The REST API: predictions and explanations over HTTP for programs (a hospital viewer, a notebook, a teaching
page), beside the dashboard for people. It calls the same ``core`` functions on the same model folders, quality
caches and out-of-distribution statistics; it adds transport, limits, authentication and jobs, nothing else.

    python -m core serve [--host 127.0.0.1] [--port 8000]       # or: make api;  docs at /docs

Settings (environment, read by :func:`create_app`): ``XAI_API_TOKEN`` (a bearer token every endpoint but
``/health`` then requires), ``XAI_API_CORS_ORIGINS`` (comma-separated origins; none by default: closed),
``XAI_API_SYNC_SECONDS`` (time limit of a synchronous call, 60), ``XAI_API_MAX_BODY_MIB`` (request size limit,
the upload limit plus 1 MiB), ``XAI_API_CONCURRENCY`` (model computations at once), ``XAI_MAX_MODEL_MIB`` (the
largest model ``POST /models`` takes, 2048; its request may be that plus the request size limit) and
``XAI_API_MODEL_BODY_SECONDS`` (the time such a request's body has to arrive, 600).

The routes live in :mod:`.routers` (one per resource), their schemas in :mod:`.schemas`, the error answers in
:mod:`.http_errors`, the bounds and the token check in :mod:`.limits`, and what they share in :mod:`.services`.
"""
from __future__ import annotations

import contextlib
import logging
import os

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse

from core.faces.api import http_errors
from core.faces.api.limits import Gate, Limits, authorised, header_deadline_protocol
from core.faces.api.openapi import documented
from core.faces.api.routers import ROUTERS
from core.faces.api.services import Services
from core.version import project_version


#: where the API documentation pages' scripts and styles are served from (never a CDN)
DOCS_ASSETS = "/docs-assets"


def create_app() -> FastAPI:
    """The API, configured from the environment (see the module docstring)."""
    limits = Limits()
    svc = Services(limits)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        warm_imports()
        yield
        svc.shutdown()

    # redirect_slashes=False: Starlette's trailing-slash redirect copies the request's Host header into Location
    app = FastAPI(title="XAI dashboard API", version=project_version(), lifespan=lifespan, redirect_slashes=False,
                  description="Predictions and explanations of the dashboard's models, for programs. Every error is "
                              "JSON {detail, error} with a 4xx status for bad input.",
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.services, app.state.limits = svc, limits
    app.openapi = lambda: documented(app)  # the schema with uploads as binary files and every error documented
    # the documentation too is for token holders when there is a token (the gate checks it)
    guard = [Depends(authorised)] if limits.token else []
    from fastapi.openapi.docs import get_swagger_ui_html

    @app.get("/openapi.json", include_in_schema=False, dependencies=guard)
    def openapi_json():
        return JSONResponse(app.openapi())

    # Swagger UI's files come from the installed fastapi-offline package, not a CDN: /docs works offline (no ReDoc
    # page: its bundle fetches its logo from a CDN)
    from importlib.resources import files

    from fastapi.staticfiles import StaticFiles

    app.mount(DOCS_ASSETS, StaticFiles(directory=str(files("fastapi_offline") / "static")), name="docs-assets")

    @app.get("/docs", include_in_schema=False, dependencies=guard)
    def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title=app.title,
                                   swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png")

    if limits.cors:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=limits.cors, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(Gate, limits=limits)
    for exc_class, handler in http_errors.HANDLERS.items():
        app.add_exception_handler(exc_class, handler)
    for router in ROUTERS:
        app.include_router(router)
    return app


def warm_imports() -> None:
    """Import what the handlers import on first use (the methods' libraries take seconds), before the server takes
    requests: a first import in a worker thread holds the interpreter for long stretches, and ``/health`` waited
    a second behind it on a cold server (``python -m benchmarks --api-hostile``)."""
    import core.datasets.images  # noqa: F401
    import core.explainers  # noqa: F401  (every method and its library)
    import core.modelling.checkpoints  # noqa: F401
    import core.modelling.trust  # noqa: F401
    import core.present.render  # noqa: F401
    import core.quality  # noqa: F401


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the API with uvicorn (one process): a deadline for each request's headers, at most
    ``XAI_API_MAX_CONNECTIONS`` connections (503 beyond), idle keep-alive connections closed after 5 s."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app()
    limits = app.state.limits
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=True,
                forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
                http=header_deadline_protocol(limits.header_seconds), limit_concurrency=limits.max_connections,
                timeout_keep_alive=5)
