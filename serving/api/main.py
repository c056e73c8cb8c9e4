"""The factory uvicorn runs in each worker process: JSON logs, then the app."""

from __future__ import annotations

from fastapi import FastAPI

from serving.api.app import create_app
from serving.api.observability import configure_json_logging


def app_factory() -> FastAPI:
    configure_json_logging("INFO")
    return create_app()
