"""Turn settings into the objects the rest of the product uses (backends, stores, orchestrator)."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from orchestrator.cost import Price, PriceBook
from orchestrator.lead import LeadConfig
from orchestrator.prerouter import MiniLMEmbedder, PreRouter
from orchestrator.run import Orchestrator, RunBudget
from orchestrator.store import TranscriptStore
from serving.settings import Settings
from specialists.backend import SLMBackend
from specialists.catalog import Catalog
from specialists.errors import ModelError
from specialists.local import LocalBackend
from specialists.model_store import KNOWN_MODELS, ModelStore
from specialists.pull import pull_model
from specialists.vllm_client import VLLMBackend

Log = Callable[[str], None]


def model_store(settings: Settings) -> ModelStore:
    return ModelStore(settings.models_dir)


def resolve_base_model(settings: Settings, *, log: Log = lambda _m: None) -> Path:
    """The base model's directory, pulled first when it is a known alias and ``auto_pull`` is on."""
    store = model_store(settings)
    ref = settings.slm.base_model
    try:
        return store.resolve(ref)
    except ModelError:
        if not (settings.slm.auto_pull and ref in KNOWN_MODELS) or store.path_for(ref).exists():
            raise
    log(
        f"base model {ref} is not pulled yet; pulling it once "
        "(UNDERSTUDY_SLM_AUTO_PULL=false stops this)"
    )
    return pull_model(ref, store, log=log).path


def build_backend(
    settings: Settings, *, backend: str | None = None, log: Log = lambda _m: None
) -> SLMBackend:
    """The SLM backend the settings (or an explicit ``backend`` name) select."""
    slm = settings.slm
    if (backend or slm.backend) == "vllm":
        return VLLMBackend(
            slm.base_url,
            base_model_name=slm.base_model,
            api_key=slm.api_key.get_secret_value() if slm.api_key else None,
            timeout_s=slm.timeout_s,
            connect_timeout_s=slm.connect_timeout_s,
            max_retries=slm.max_retries,
        )
    return LocalBackend(
        resolve_base_model(settings, log=log),
        base_ref=slm.base_model,
        device=slm.device,
        max_batch_size=slm.max_batch_size,
    )


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


def build_prerouter(settings: Settings, catalog: Catalog) -> PreRouter | None:
    """The embedding pre-router, or ``None`` when sentence-transformers is not installed."""
    if importlib.util.find_spec("sentence_transformers") is None:
        return None
    embedder = MiniLMEmbedder(settings.router.embedding_model)
    return PreRouter(catalog, embedder, threshold=settings.router.threshold)


@asynccontextmanager
async def open_orchestrator(
    settings: Settings,
    *,
    catalog: Catalog | None = None,
    backend: str | None = None,
    log: Log = lambda _m: None,
) -> AsyncIterator[Orchestrator]:
    """An orchestrator with its store and backend opened, closed again on exit."""
    catalog = catalog or settings.catalog()
    store = await TranscriptStore.open(settings.database_url)
    slm = build_backend(settings, backend=backend, log=log)
    try:
        yield Orchestrator(
            catalog=catalog,
            backend=slm,
            prerouter=build_prerouter(settings, catalog),
            lead=lead_config(settings),
            store=store,
            prices=price_book(settings),
            budget=RunBudget(
                max_seconds=settings.run.max_seconds,
                max_lead_turns=settings.run.max_lead_turns,
                max_lead_tokens=settings.run.max_lead_tokens,
            ),
        )
    finally:
        await slm.aclose()
        await store.close()
