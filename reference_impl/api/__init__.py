"""The HTTP API (FastAPI): translation between HTTP and the domain services."""

from __future__ import annotations

from .app import API_VERSION, create_app

__all__ = ["API_VERSION", "create_app"]
