"""``understudy serve``: the OpenAI-compatible chat API."""

from __future__ import annotations

import math
import os
import tempfile
from typing import Annotated

import typer

from serving.settings import get_settings


def serve(
    host: Annotated[str | None, typer.Option(help="Address (default UNDERSTUDY_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default UNDERSTUDY_API_PORT).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Worker processes; they share the database (PostgreSQL)."),
    ] = None,
) -> None:
    """Serve /v1/chat/completions, /v1/models, /v1/feedback, /metrics, /healthz, /readyz.

    Embedded defaults (SQLite, local SLM backend) work on a fresh machine; set
    UNDERSTUDY_LEAD_MODEL or UNDERSTUDY_LEAD_BASE_URL for the modes that use a lead, and create
    a key with `understudy keys create NAME` (or set UNDERSTUDY_API_AUTH=false for local use).
    """
    import uvicorn

    from serving.api.drain import ANSWER_S

    everything = get_settings()
    drain_s = everything.shutdown_drain_s  # refuses a drain shorter than the run budget
    settings = everything.api
    workers = workers or settings.workers
    with tempfile.TemporaryDirectory(prefix="understudy-metrics-") as metrics_dir:
        if workers > 1:
            # Workers are fresh interpreters started by uvicorn: this process is their edge, so
            # it hands them the shared metrics directory through their environment.
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
            os.environ["UNDERSTUDY_API_METRICS_DIR"] = metrics_dir
        uvicorn.run(
            "serving.api.main:app_factory",
            factory=True,
            host=host or settings.host,
            port=port or settings.port,
            workers=workers,
            log_config=None,
            access_log=False,
            # The app's own drain (serving/api/drain.py) ends first and answers what it cuts.
            timeout_graceful_shutdown=math.ceil(drain_s + ANSWER_S),
        )
