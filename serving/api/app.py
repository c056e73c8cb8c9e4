"""``create_app(settings)``: the chat agent API as a FastAPI application.

Clients, stores and the orchestrator are created in ``lifespan`` and kept on ``app.state``;
routers only read them. ``understudy serve`` runs this factory under uvicorn (one app per worker).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from database import Database
from distill.jobs import DistillJobStore
from distill.registry import RegistryStore
from orchestrator.transcripts import TranscriptSpool, TranscriptStore
from orchestrator.transcripts.analytics import RunAnalytics
from serving import console
from serving.api import admin, batches, chat, feedback, files, responses
from serving.api.drain import Drain, RefuseWhileDraining
from serving.api.errors import install_error_handlers
from serving.api.limits import BodySizeLimit
from serving.api.observability import Metrics, RequestContextMiddleware
from serving.api.observability import router as observability_router
from serving.api.roi_metrics import RoiGauges
from serving.batch.expiry import expiry_sweeper
from serving.batch.store import BatchStore, FileStore
from serving.batch.worker import background_worker
from serving.console.sessions import SessionStore
from serving.keys import KeyStore
from serving.orchestration import audit_sampler, build_orchestrator, catalog_sync
from serving.runtime import build_backend, roi_config
from serving.sandbox import require_sandbox
from serving.settings import Settings, get_settings
from serving.stored_responses import ResponseStore
from serving.stores import open_database, spool_drainer, transcript_spool
from specialists.backend import SLMBackend
from specialists.vllm_client import VLLMBackend


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API for ``settings`` (default: this process's settings)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="Understudy",
        summary="OpenAI-compatible chat API: a lead model delegating to small specialists.",
        version="0.1.0",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.started_at = time.time()
    app.state.metrics = Metrics(multiprocess_dir=settings.api.metrics_dir)
    app.state.drain = Drain(settings.shutdown_drain_s)
    install_error_handlers(app)
    app.include_router(chat.router)
    app.include_router(responses.router)
    app.include_router(feedback.router)
    app.include_router(files.router)
    app.include_router(batches.router)
    app.include_router(observability_router)
    app.include_router(admin.router)
    console.install(app)
    app.add_middleware(RefuseWhileDraining, drain=app.state.drain)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.api.body_limit_bytes,
        larger={"/v1/files": settings.batch.max_file_bytes},
    )
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)
    if settings.api.cors_origins:  # outermost: preflights are answered before anything else
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["*"],
        )
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    drain: Drain = app.state.drain
    async with AsyncExitStack() as stack:
        stack.enter_context(drain.on_stop_signals())
        # One database for the whole process: every store below writes through its one queue.
        database = await open_database(settings)
        stack.push_async_callback(database.close)
        store = TranscriptStore(database)
        backend = build_backend(settings)
        stack.push_async_callback(backend.aclose)
        app.state.database = database
        app.state.store = store
        app.state.keys = KeyStore(database)
        app.state.responses = ResponseStore(database)
        app.state.backend = backend
        app.state.spool = transcript_spool(settings)
        app.state.orchestrator = build_orchestrator(
            settings,
            store=store,
            spool=app.state.spool,
            backend=backend,
            audits=audit_sampler(settings, database),
        )
        app.state.roi = RoiGauges(
            database,
            settings.catalog(),
            roi_config(settings),
            refresh_s=settings.roi.metrics_refresh_s,
        )
        app.state.batches = BatchStore(database)
        app.state.files = FileStore(database)
        app.state.analytics = RunAnalytics(database)
        app.state.registry = RegistryStore(database)
        app.state.distill_jobs = DistillJobStore(database)
        app.state.console_sessions = SessionStore(database)
        await stack.enter_async_context(
            expiry_sweeper(
                app.state.files,
                app.state.batches,
                settings.files_dir,
                every_s=settings.batch.expiry_sweep_s,
            )
        )
        app.state.readiness = _readiness_checks(settings, database, app.state.spool, backend, drain)
        await stack.enter_async_context(spool_drainer(settings, database))
        sync = catalog_sync(settings, app.state.orchestrator)
        app.state.readiness["adapters"] = sync.check
        await stack.enter_async_context(sync.running())
        if settings.batch.api_worker:
            await stack.enter_async_context(
                background_worker(
                    settings.batch,
                    app.state.orchestrator,
                    files_dir=settings.files_dir,
                    degraded=settings.api.degraded,
                )
            )
        yield


def _readiness_checks(
    settings: Settings,
    database: Database,
    spool: TranscriptSpool,
    backend: SLMBackend,
    drain: Drain,
) -> dict[str, Callable[[], Awaitable[None]]]:
    async def writable_database() -> None:
        await database.probe_write("readyz")

    async def usable_spool() -> None:
        await asyncio.to_thread(spool.check)

    async def slm() -> None:
        if isinstance(backend, VLLMBackend):
            await backend.served_models()

    async def lead() -> None:
        if not (settings.lead.model or settings.lead.base_url):
            raise RuntimeError("no lead configured (set UNDERSTUDY_LEAD_MODEL)")

    async def sandbox() -> None:
        await asyncio.to_thread(require_sandbox, settings)

    async def accepting() -> None:
        if drain.stopping:
            raise RuntimeError("the server is shutting down")

    return {
        "database": writable_database,
        "transcript_spool": usable_spool,
        "slm": slm,
        "lead": lead,
        "sandbox": sandbox,
        "accepting": accepting,
    }
