"""The API's OpenAPI schema as clients need it: FastAPI's, with three corrections.

- Uploads are ``{"type": "string", "format": "binary"}``. Under OpenAPI 3.1 FastAPI describes an ``UploadFile`` by
  ``contentMediaType`` only; client generators (openapi-python-client) then type the field as text and cannot
  upload, and property-based testers (Schemathesis) never send a file, so they never reach a model.
- A form field is never ``null`` (a multipart body cannot say null: the field is left out), so an optional form
  field is described by its type alone, not ``anyOf [type, null]``, which generators would send as the text
  "null".
- Every error status a route can answer is documented here, from the route's method and path, with the one error
  model, ``Error`` (``{detail, error}``), including 422, which FastAPI documents with its own validation schema
  although this API answers ``Error``. The routes declare only their successful answers.
"""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from core.faces.api.schemas import Error

ERROR_REF = {"$ref": "#/components/schemas/Error"}

#: why each status is answered, as the schema says it
REASONS = {
    400: "The uploaded model cannot be imported: not a model file read here, a pickled whole model, or a card that "
         "contradicts the model",
    401: "No or wrong bearer token (when the server has one)",
    404: "Unknown model, method, dataset, job or run",
    408: "The request body did not arrive in time",
    409: "The server lacks the files this needs (dataset, weights), or the thing is busy or incomplete",
    413: "The request, the file or its pixel count is over the limit",
    422: "Invalid input: a parameter, the image, or a body that cannot be parsed",
    429: "Too many jobs are waiting: retry after Retry-After seconds",
    500: "Internal error: the body names a log id",
    503: "Too many computations are waiting: retry after Retry-After seconds",
    504: "A synchronous call ran past its time limit: retry as a job (async=true)",
}


def _statuses(path: str, method: str, operation: dict[str, Any], token: bool) -> set[int]:
    codes = {422, 500} | ({401} if token else set())
    if method in ("post", "put", "patch"):
        codes |= {408, 413}
    if "{" in path or method == "post":
        codes |= {404, 409}
    if path in ("/predict", "/explain", "/runs", "/models") and method == "post":
        codes |= {503, 504}
    if path == "/models" and method == "post":
        codes.add(400)
    if path in ("/explain", "/runs") and method == "post":
        codes.add(429)
    return codes | {int(c) for c in operation.get("responses", {}) if c.isdigit() and int(c) >= 400}


def _binary_uploads(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("contentMediaType") == "application/octet-stream" and node.get("type") == "string":
            del node["contentMediaType"]
            node["format"] = "binary"
        for value in node.values():
            _binary_uploads(value)
    elif isinstance(node, list):
        for value in node:
            _binary_uploads(value)


def _form_fields_without_null(spec: dict[str, Any]) -> None:
    schemas = spec.get("components", {}).get("schemas", {})
    for item in spec.get("paths", {}).values():
        for operation in item.values():
            form = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data")
            if not form:
                continue
            ref = form["schema"].get("$ref", "")
            body = schemas.get(ref.rsplit("/", 1)[-1], form["schema"])
            for name, prop in body.get("properties", {}).items():
                kinds = [k for k in prop.get("anyOf", []) if k.get("type") != "null"]
                if "anyOf" in prop and len(kinds) == 1:
                    del prop["anyOf"]
                    prop.update(kinds[0])


def documented(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI schema with the corrections above (built once, then cached on the app)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    token = bool(app.state.limits.token)
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            for code in sorted(_statuses(path, method, operation, token)):
                responses[str(code)] = {"description": REASONS.get(code, "Error"),
                                        "content": {"application/json": {"schema": ERROR_REF}}}
    _binary_uploads(spec)
    _form_fields_without_null(spec)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = Error.model_json_schema()
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = spec
    return spec
