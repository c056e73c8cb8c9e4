"""Assemble an :class:`~orchestrator.run.Orchestrator` from settings."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from database import Database
from distill.catalog import served_catalog
from distill.reconcile import CatalogSync, registry_sync
from orchestrator.audits import AuditSampler, AuditStore
from orchestrator.budget import RunBudget
from orchestrator.cost import Price, PriceBook
from orchestrator.lead import LeadConfig
from orchestrator.lead_gate import LeadGate
from orchestrator.prerouter import PreRouter
from orchestrator.run import Orchestrator
from orchestrator.transcripts import TranscriptSpool, TranscriptStore
from serving.runtime import Log, audit_policy, build_backend, build_prerouter
from serving.sandbox import sandbox_limits
from serving.settings import Settings
from serving.stores import transcript_spool
from specialists.backend import SLMBackend
from specialists.catalog import Catalog


def lead_config(settings: Settings) -> LeadConfig:
    lead = settings.lead
    return LeadConfig(
        model=lead.model,
        base_url=lead.base_url,
        api_key=lead.api_key.get_secret_value() if lead.api_key else None,
        timeout_s=lead.timeout_s,
        max_retries=lead.max_retries,
    )


def price_book(settings: Settings) -> PriceBook:
    overrides = {
        name: Price(p.input_per_million / 1e6, p.output_per_million / 1e6)
        for name, p in settings.lead.prices.items()
    }
    return PriceBook(overrides, slm_per_million=settings.slm.cost_per_million)


def optional_prerouter(settings: Settings, catalog: Catalog) -> PreRouter | None:
    """The embedding pre-router, or ``None`` when sentence-transformers is not installed."""
    if importlib.util.find_spec("sentence_transformers") is None:
        return None
    return build_prerouter(settings, catalog)


def audit_sampler(settings: Settings, database: Database) -> AuditSampler | None:
    """What queues the audited share of live answers on ``database`` (the settings' own);
    ``None`` when audits are off (``UNDERSTUDY_AUDIT_RATE=0``)."""
    if settings.audit.rate <= 0:
        return None
    return AuditSampler(
        AuditStore(database), audit_policy(settings), refresh_s=settings.audit.refresh_s
    )


def build_orchestrator(
    settings: Settings,
    *,
    store: TranscriptStore | None,
    backend: SLMBackend,
    spool: TranscriptSpool | None = None,
    catalog: Catalog | None = None,
    lead_gate: LeadGate | None = None,
    audits: AuditSampler | None = None,
) -> Orchestrator:
    """The orchestrator the settings describe, over an opened store and backend.

    ``spool`` stands in for ``store``'s database while it refuses writes: give the settings'
    spool (:func:`~serving.stores.transcript_spool`) only with the settings' database, whose
    drainers write it there — never with another one (an evaluation's), whose runs would land
    in production. ``audits`` likewise: live traffic only (:func:`audit_sampler`), never an
    evaluation's runs."""
    catalog = catalog or settings.catalog()
    return Orchestrator(
        catalog=catalog,
        backend=backend,
        prerouter=optional_prerouter(settings, catalog),
        lead=lead_config(settings),
        store=store,
        spool=spool,
        prices=price_book(settings),
        budget=RunBudget(
            max_seconds=settings.run.max_seconds,
            max_lead_turns=settings.run.max_lead_turns,
            max_lead_tokens=settings.run.max_lead_tokens,
        ),
        limits=settings.api.request_limits,
        sandbox=sandbox_limits(settings),
        default_lead_share=settings.router.lead_share,
        lead_gate=lead_gate,
        audits=audits,
    )


@asynccontextmanager
async def open_orchestrator(
    settings: Settings,
    database: Database,
    *,
    catalog: Catalog | None = None,
    backend: str | None = None,
    log: Log = lambda _m: None,
    lead_gate: LeadGate | None = None,
) -> AsyncIterator[Orchestrator]:
    """An orchestrator recording on ``database`` (the settings' own, so with the settings'
    spool and audit queue), with its backend opened (closed again on exit); by default with
    the catalog the registry serves (promoted specialists included)."""
    slm = build_backend(settings, backend=backend, log=log)
    try:
        catalog = catalog or await served_catalog(database, settings.catalog())
        yield build_orchestrator(
            settings,
            store=TranscriptStore(database),
            spool=transcript_spool(settings),
            backend=slm,
            catalog=catalog,
            lead_gate=lead_gate,
            audits=audit_sampler(settings, database),
        )
    finally:
        await slm.aclose()


def catalog_sync(settings: Settings, orchestrator: Orchestrator) -> CatalogSync:
    """What keeps a serving process's ``orchestrator`` on the registry's catalog (promotions and
    rollbacks), polling as often as the settings say, and unloads a superseded adapter once no
    run can still be using it: the run budget, a poll and the margin after it left."""
    distill = settings.distill
    return registry_sync(
        orchestrator,
        base=settings.catalog(),
        interval_s=distill.registry_poll_s,
        unload_after_s=settings.run.max_seconds + distill.registry_poll_s + distill.unload_margin_s,
    )
