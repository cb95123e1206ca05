"""The REST API (FastAPI): ``create_app()`` builds it, ``serve()`` runs it with uvicorn."""
from core.faces.api.app import create_app, serve
from core.faces.api.schemas import decode_array, encode_array

__all__ = ["create_app", "decode_array", "encode_array", "serve"]
