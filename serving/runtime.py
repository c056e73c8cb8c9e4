"""Turn settings into SLM objects: the model store, the base model, the backend.

Kept free of the orchestrator (and so of the agents SDK) so that model commands start fast;
:mod:`serving.orchestration` assembles the rest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from orchestrator.prerouter import MiniLMEmbedder, PreRouter
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


def build_prerouter(settings: Settings, catalog: Catalog | None = None) -> PreRouter:
    """The pre-router the settings describe (embedding model, threshold, catalog)."""
    embedder = MiniLMEmbedder(settings.router.embedding_model)
    return PreRouter(catalog or settings.catalog(), embedder, threshold=settings.router.threshold)
