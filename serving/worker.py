"""``understudy worker``: a process that runs queued jobs, on any number of machines.

Jobs wait in the database; a worker runs the loop of every job kind it is given, side by side,
until it is stopped. :data:`JOB_KINDS` is the dispatch point: a new kind of job (distillation,
…) is one more entry — a coroutine that takes the :class:`WorkerContext` and a stop event, and
returns once the event is set, leaving whatever it holds to other workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from database import Database
from distill.prerouter.versions import RouterVersions
from distill.registry import RegistryStore
from distill.steward import Steward, StewardMetrics, steward_loop
from evals.audits import AuditDrain
from evals.data import DataSource
from orchestrator.audits import AuditStore
from orchestrator.transcripts import TranscriptStore
from serving.batch.limiter import LeadLimiter
from serving.batch.store import WorkerInfo
from serving.batch.worker import BatchWorker, batch_worker, lead_limiter
from serving.orchestration import build_orchestrator, catalog_sync, open_orchestrator
from serving.runtime import (
    Log,
    build_backend,
    distill_config,
    router_embedder,
    slm_access,
    static_table_ready,
    steward_config,
)
from serving.settings import Settings
from serving.stores import drain_spool
from specialists.errors import ConfigurationError


@dataclass(frozen=True)
class WorkerContext:
    """What every job loop of one worker process shares."""

    settings: Settings
    database: Database
    """The process's one database, shared by every job loop."""
    info: WorkerInfo
    concurrency: int | None = None
    """Items of work at once (``--concurrency``); None: each kind's setting."""
    log: Log = lambda _message: None

    @functools.cached_property
    def lead_limiter(self) -> LeadLimiter | None:
        """The process's one limiter on the lead, shared by its batch and audit loops, so that
        together they keep to the process's share of the batch lead limits."""
        return lead_limiter(self.settings.batch)


JobLoop = Callable[[WorkerContext, asyncio.Event], Coroutine[Any, Any, None]]


@asynccontextmanager
async def open_batch_worker(
    settings: Settings,
    database: Database,
    info: WorkerInfo,
    *,
    concurrency: int | None = None,
    job_id: str | None = None,
    follow_registry: bool = False,
    log: Log = lambda _message: None,
    limiter: LeadLimiter | None = None,
) -> AsyncIterator[BatchWorker]:
    """A batch worker over an orchestrator of its own whose lead calls obey the batch lead
    limits (through ``limiter``, when the process shares one); with ``follow_registry``,
    promotions reach it while it runs."""
    limiter = limiter or lead_limiter(settings.batch)
    # Following the registry starts from the settings' catalog: the sync's first pass applies
    # the registry's active versions once, instead of on top of a catalog that already has them.
    catalog = settings.catalog() if follow_registry else None
    async with AsyncExitStack() as stack:
        orchestrator = await stack.enter_async_context(
            open_orchestrator(settings, database, catalog=catalog, lead_gate=limiter, log=log)
        )
        if follow_registry:
            await stack.enter_async_context(catalog_sync(settings, orchestrator).running())
        yield batch_worker(
            settings.batch,
            orchestrator,
            info=info,
            concurrency=concurrency,
            limiter=limiter,
            job_id=job_id,
            # A worker bound to one job (`batch run`) runs it; the others validate new jobs too.
            files_dir=settings.files_dir if job_id is None else None,
            degraded=settings.api.degraded,
        )


async def run_batches(context: WorkerContext, stop: asyncio.Event) -> None:
    """Validate new batches and run the items of every job until ``stop`` is set."""
    async with open_batch_worker(
        context.settings,
        context.database,
        context.info,
        concurrency=context.concurrency,
        follow_registry=True,
        log=context.log,
        limiter=context.lead_limiter,
    ) as worker:
        await worker.run(stop)


async def run_distillations(context: WorkerContext, stop: asyncio.Event) -> None:
    """Run distillation jobs until ``stop`` is set.

    Imported here, not at the top: distillation needs the ``local`` extra (torch, peft,
    dataset tools), which a batch-only worker on a light install does not have.
    """
    try:
        from distill.pipeline import run_distillation_jobs
    except ImportError as exc:
        raise ConfigurationError(
            f"distillation jobs need the local extra ({exc}); "
            'install it with pip install "understudy[local]"'
        ) from exc
    settings = context.settings
    await run_distillation_jobs(
        context.database,
        distill_config(settings),
        slm_access(settings),
        worker_id=context.info.id,
        stop=stop,
        log=context.log,
    )


async def run_audits(context: WorkerContext, stop: asyncio.Event) -> None:
    """Re-ask the lead what specialists answered unchecked and, beside it (unless
    ``UNDERSTUDY_AUDIT_STEWARD`` is off), apply what the audits decide, until ``stop`` is set."""
    async with asyncio.TaskGroup() as group:
        group.create_task(_drain_audits(context, stop), name="audit-drain")
        if context.settings.audit.steward:
            group.create_task(_steward(context, stop), name="audit-steward")


async def _steward(context: WorkerContext, stop: asyncio.Event) -> None:
    """Canary verdicts, demotions and threshold re-fits (:mod:`distill.steward`), counted on a
    metrics registry of the worker's own: with the API's ``PROMETHEUS_MULTIPROC_DIR`` in the
    worker's environment, the API's ``/metrics`` adds its counts up."""
    steward = Steward(
        RegistryStore(context.database),
        AuditStore(context.database),
        steward_config(context.settings),
        metrics=StewardMetrics(CollectorRegistry()),
    )
    await steward_loop(steward, stop)


async def _drain_audits(context: WorkerContext, stop: asyncio.Event) -> None:
    """Re-ask the lead what specialists answered unchecked, until ``stop`` is set.

    Without a lead there is no one to audit with: the loop says so once and waits, leaving
    queued audits where they are for a worker that has one.
    """
    settings = context.settings
    backend = build_backend(settings, log=context.log)  # unused by llm runs; a run needs one
    try:
        orchestrator = build_orchestrator(
            settings, store=None, backend=backend, lead_gate=context.lead_limiter
        )
        if orchestrator.lead is None:
            context.log("audits: no lead is configured (UNDERSTUDY_LEAD_MODEL); audits stay queued")
            await stop.wait()
            return
        drain = AuditDrain(
            AuditStore(context.database),
            orchestrator,
            worker_id=context.info.id,
            lease_s=settings.audit.lease_s,
            min_rouge=settings.audit.email_min_rouge,
            max_attempts=settings.audit.max_attempts,
            poll_s=settings.batch.poll_s,
        )
        await drain.run(stop)
    finally:
        await backend.aclose()


PREROUTER_CHECK_S = 600.0
"""How often the ``prerouter`` loop counts new routing labels in the transcripts."""


async def run_prerouter_retraining(context: WorkerContext, stop: asyncio.Event) -> None:
    """Retrain the learned pre-router whenever ``router.retrain_min_labels`` new routing labels
    accumulated in the transcripts, until ``stop`` is set; a version that passes the gate is
    promoted (serving processes load it at their next start).

    Without seed data (``UNDERSTUDY_DATA_DIR``) there is nothing to train on: the loop says so
    once and waits.
    """
    from distill.prerouter.retrain import retrain_if_due  # scikit-learn: only when it runs

    settings = context.settings
    if settings.data_dir is None or not settings.data_dir.is_dir():
        context.log("prerouter: UNDERSTUDY_DATA_DIR is not set; the pre-router is not retrained")
        await stop.wait()
        return
    versions = RouterVersions(settings.prerouter_dir)
    active = versions.active()
    # Retrained on the active version's embedder (a static one stays static), else MiniLM;
    # two-stage (the static classifier first) whenever the static table has been distilled.
    static = active is not None and active.embedder.startswith("static:")
    embedder = router_embedder(settings, static=static)
    two_stage = static_table_ready(settings) and not static
    fast = router_embedder(settings, static=True) if two_stage else None
    while not stop.is_set():
        await retrain_if_due(
            DataSource(settings.data_dir),
            settings.catalog(),
            TranscriptStore(context.database),
            versions,
            embedder,
            min_new_labels=settings.router.retrain_min_labels,
            log=context.log,
            fast_embedder=fast,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PREROUTER_CHECK_S)


JOB_KINDS: dict[str, JobLoop] = {
    "batch": run_batches,
    "distill": run_distillations,
    "audit": run_audits,
    "prerouter": run_prerouter_retraining,
}
"""Every kind of job a worker can run, by the name ``understudy worker --kind`` takes."""


async def run_worker(context: WorkerContext, kinds: Sequence[str], stop: asyncio.Event) -> None:
    """Run the loops of ``kinds`` until ``stop`` is set; the first to fail stops the others.
    Alongside them, transcripts spooled while the database refused writes are written to it.

    Raises:
        ConfigurationError: A kind is not in :data:`JOB_KINDS`.
    """
    unknown = [kind for kind in kinds if kind not in JOB_KINDS]
    if unknown:
        raise ConfigurationError(
            f"unknown job kind(s) {', '.join(unknown)}; kinds: {', '.join(JOB_KINDS)}"
        )
    async with asyncio.TaskGroup() as group:
        group.create_task(drain_spool(context.settings, context.database, stop), name="spool")
        for kind in dict.fromkeys(kinds):
            group.create_task(JOB_KINDS[kind](context, stop), name=f"worker-{kind}")
