"""The transcript store's tables, as SQLAlchemy 2 typed ORM classes.

These rows never leave the stores built on them; callers get the stores' dataclasses (e.g.
:mod:`orchestrator.transcripts.records`). The hand-written migration
``migrations/versions/0001_initial.py`` creates exactly these tables, and a test compares the two.
Constraint and index names are spelled out so the migration and the metadata cannot drift apart
through a naming convention.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

RUN_ID_LENGTH = 64
"""Longest run id; uuid4 hex ids use 32."""
MODE_LENGTH = 32
"""Longest mode name (``llm``, ``slm``, ``router``, ``cascade``)."""
FAILURE_KIND_LENGTH = 32
"""Longest failure kind name (``specialist_unavailable``, …)."""
FINISH_REASON_LENGTH = 16
"""Longest finish reason (``stop``, ``length``)."""

JSONColumn = JSON().with_variant(JSONB(), "postgresql")
"""JSON everywhere, JSONB on PostgreSQL so transcripts can be queried and indexed there."""


class UTCDateTime(TypeDecorator[datetime]):
    """``TIMESTAMP WITH TIME ZONE`` that always hands back aware UTC datetimes.

    SQLite has no time zone type: SQLAlchemy stores the wall-clock text and returns naive
    datetimes. Converting to UTC on the way in and tagging UTC on the way out makes both
    backends return the same instant, and keeps SQLite's text ordering chronological.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store only accepts aware datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Metadata shared by the store's tables and its Alembic environment."""


def table_of(row: type[Base]) -> Table:
    """The Core table behind an ORM class, for Core statements (``__table__`` is typed as a
    mere ``FromClause``, which ``insert``/``update``/``delete`` do not take)."""
    return cast(Table, row.__table__)


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_created_at", "created_at"),
        Index("ix_runs_mode", "mode"),
    )

    id: Mapped[str] = mapped_column(String(RUN_ID_LENGTH), primary_key=True)
    mode: Mapped[str] = mapped_column(String(MODE_LENGTH))
    input_messages: Mapped[list[Any]] = mapped_column(JSONColumn)
    answer: Mapped[str | None] = mapped_column(Text)
    route: Mapped[str] = mapped_column(Text)
    specialists: Mapped[list[Any]] = mapped_column(JSONColumn)
    escalated: Mapped[bool]
    degraded: Mapped[bool]
    confidence: Mapped[float | None] = mapped_column(Float)
    lead_input_tokens: Mapped[int] = mapped_column(Integer)
    lead_output_tokens: Mapped[int] = mapped_column(Integer)
    slm_prompt_tokens: Mapped[int] = mapped_column(Integer)
    slm_completion_tokens: Mapped[int] = mapped_column(Integer)
    cost_usd: Mapped[float] = mapped_column(Float)
    lead_only_cost_usd: Mapped[float] = mapped_column(Float)
    latency_ms: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    failure_kind: Mapped[str | None] = mapped_column(String(FAILURE_KIND_LENGTH))
    """The kind of ``error`` (``orchestrator.outcome.FailureKind``); NULL with an error for
    runs recorded before migration 0005."""
    route_scores: Mapped[dict[str, Any] | None] = mapped_column(JSONColumn)
    """The pre-router's scores; NULL for runs recorded before migration 0005."""
    finish_reason: Mapped[str] = mapped_column(
        String(FINISH_REASON_LENGTH), server_default=text("'stop'")
    )
    """``stop``, ``length`` or ``tool_calls`` (migration 0008); earlier runs read ``stop``, what
    they reported."""
    app_tool_calls: Mapped[list[Any] | None] = mapped_column(JSONColumn)
    """The calls of the caller's own tools the run answered with (``finish_reason`` ``tool_calls``:
    ``{id, name, arguments}`` each), so a replayed run answers them again (migration 0010);
    NULL when it made none."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    # lazy="raise": children are loaded on purpose (selectinload) or not at all; an accidental
    # lazy load would do blocking IO inside the event loop.
    lead_calls: Mapped[list[LeadCallRow]] = relationship(
        order_by="LeadCallRow.seq", cascade="all, delete-orphan", passive_deletes=True, lazy="raise"
    )
    tool_calls: Mapped[list[ToolCallRow]] = relationship(
        order_by="ToolCallRow.seq", cascade="all, delete-orphan", passive_deletes=True, lazy="raise"
    )


class LeadCallRow(Base):
    __tablename__ = "lead_calls"
    __table_args__ = (Index("ix_lead_calls_run_id_seq", "run_id", "seq", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(
        String(RUN_ID_LENGTH),
        ForeignKey("runs.id", ondelete="CASCADE", name="fk_lead_calls_run_id_runs"),
    )
    seq: Mapped[int] = mapped_column(Integer)
    """Position in the run, from 0; the order the calls were made in."""
    model: Mapped[str] = mapped_column(Text)
    messages: Mapped[list[Any]] = mapped_column(JSONColumn)
    output: Mapped[list[Any]] = mapped_column(JSONColumn)
    input_tokens: Mapped[int] = mapped_column(Integer)
    output_tokens: Mapped[int] = mapped_column(Integer)
    cost_usd: Mapped[float] = mapped_column(Float)
    latency_ms: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)


class ToolCallRow(Base):
    __tablename__ = "tool_calls"
    __table_args__ = (Index("ix_tool_calls_run_id_seq", "run_id", "seq", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(
        String(RUN_ID_LENGTH),
        ForeignKey("runs.id", ondelete="CASCADE", name="fk_tool_calls_run_id_runs"),
    )
    seq: Mapped[int] = mapped_column(Integer)
    """Position in the run, from 0; the order the calls were made in."""
    name: Mapped[str] = mapped_column(Text)
    input: Mapped[dict[str, Any]] = mapped_column(JSONColumn)
    output: Mapped[str] = mapped_column(Text)
    latency_ms: Mapped[float] = mapped_column(Float)
    confidence: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    specialist: Mapped[str | None] = mapped_column(Text)
    """The specialist called, for specialist calls (NULL for calls recorded before 0005)."""
    slm_prompt_tokens: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    slm_completion_tokens: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class FeedbackRow(Base):
    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_run_id", "run_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(
        String(RUN_ID_LENGTH),
        ForeignKey("runs.id", ondelete="CASCADE", name="fk_feedback_run_id_runs"),
    )
    score: Mapped[float] = mapped_column(Float)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


# API keys (migration 0002). Only a key's SHA-256 is stored: the plaintext is shown once, at
# creation. Usage counters live in the database, not in process memory, so that every HTTP worker
# process enforces the same limits.

KEY_ID_LENGTH = 32
"""uuid4 hex ids."""
KEY_NAME_LENGTH = 100
"""Longest key name; a label for people, not a description."""
KEY_PREFIX_LENGTH = 12
"""Characters of the plaintext key kept for display (``us-`` and nine random characters)."""
KEY_HASH_LENGTH = 64
"""Hex SHA-256."""
USAGE_KIND_LENGTH = 8
"""Longest usage window kind (``minute``, ``day``)."""
ON_DEGRADED_LENGTH = 16
"""Longest degradation policy (``degrade``, ``error``)."""
WRITE_PROBE_NAME_LENGTH = 64
"""Longest write-probe name (who probed: ``readyz``, ``doctor``)."""


class ApiKeyRow(Base):
    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_key_hash", "key_hash", unique=True),)

    id: Mapped[str] = mapped_column(String(KEY_ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(KEY_NAME_LENGTH))
    prefix: Mapped[str] = mapped_column(String(KEY_PREFIX_LENGTH))
    key_hash: Mapped[str] = mapped_column(String(KEY_HASH_LENGTH))
    """Hex SHA-256 of the whole key; keys are 32 random bytes, so a slow hash would add nothing."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    """None: no limit."""
    tokens_per_day: Mapped[int | None] = mapped_column(BigInteger)
    """None: no limit. Days are UTC days."""
    admin: Mapped[bool] = mapped_column(server_default=false())
    """Sees every key's files and batches (migration 0006); other keys see only their own."""
    on_degraded: Mapped[str | None] = mapped_column(String(ON_DEGRADED_LENGTH))
    """``degrade`` or ``error`` for this key's degraded answers (migration 0007); NULL: the
    server's setting. A request's own ``on_degraded`` overrides either."""


class ApiKeyUsageRow(Base):
    __tablename__ = "api_key_usage"
    __table_args__ = (CheckConstraint("kind IN ('minute', 'day')", name="ck_api_key_usage_kind"),)

    key_id: Mapped[str] = mapped_column(
        String(KEY_ID_LENGTH),
        ForeignKey("api_keys.id", ondelete="CASCADE", name="fk_api_key_usage_key_id_api_keys"),
        primary_key=True,
    )
    kind: Mapped[str] = mapped_column(String(USAGE_KIND_LENGTH), primary_key=True)
    """``minute``: requests admitted in the window; ``day``: tokens used in the UTC day."""
    window_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


# Batch jobs (migration 0003). A job's requests are rows, so any number of worker processes can
# claim them (``FOR UPDATE SKIP LOCKED`` on PostgreSQL) and a crash loses nothing: an item whose
# worker stopped renewing its lease is claimed again. Uploaded files (``/v1/files``) live on disk
# under the data directory, referenced here by path and hash; output and error files are
# rendered from the items when read, so results are stored once.

FILE_ID_LENGTH = 40
"""``file-`` plus 24 hex digits."""
BATCH_ID_LENGTH = 40
"""``batch_`` plus 24 hex digits."""
CUSTOM_ID_LENGTH = 512
"""Longest ``custom_id`` of a batch request."""
WORKER_ID_LENGTH = 64
"""``host:pid:`` plus 8 hex digits, cut to fit."""
STATUS_LENGTH = 16
BATCH_STATUSES = ("validating", "failed", "in_progress", "completed", "cancelling", "cancelled")
ITEM_STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")


def one_of(column: str, values: tuple[str, ...]) -> str:
    """A check constraint's SQL: ``column`` holds one of ``values``."""
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


class FileRow(Base):
    __tablename__ = "files"
    __table_args__ = (
        Index("ix_files_created_at", "created_at"),
        Index("ix_files_owner_key_id_created_at", "owner_key_id", "created_at"),
        Index("ix_files_expires_at", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(FILE_ID_LENGTH), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32))
    """``batch`` (uploaded input) or ``batch_output`` (a job's output or error file)."""
    filename: Mapped[str] = mapped_column(Text)
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str | None] = mapped_column(Text)
    """Relative to the files directory; None for output files, which are rendered from items."""
    owner_key_id: Mapped[str | None] = mapped_column(String(KEY_ID_LENGTH))
    """The API key that uploaded it (a batch's output: the batch's owner); None when made with
    authentication off, or before migration 0006. Not a foreign key: keys are revoked, never
    deleted."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When it disappears (an upload's ``expires_after``, a batch's ``output_expires_after``);
    None: never (migration 0009)."""
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When the expiry sweeper deleted its bytes; the row stays so that asking for the file
    says it expired rather than that it never was."""


class BatchJobRow(Base):
    __tablename__ = "batch_jobs"
    __table_args__ = (
        CheckConstraint(one_of("status", BATCH_STATUSES), name="ck_batch_jobs_status"),
        Index("ix_batch_jobs_status_created_at", "status", "created_at"),
        Index("ix_batch_jobs_created_at", "created_at"),
        Index("ix_batch_jobs_owner_key_id_created_at", "owner_key_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(BATCH_ID_LENGTH), primary_key=True)
    status: Mapped[str] = mapped_column(String(STATUS_LENGTH))
    endpoint: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(MODE_LENGTH))
    """The mode of requests whose ``model`` is not an Understudy model name."""
    input_name: Mapped[str] = mapped_column(Text)
    """The input file's name, for people."""
    input_file_id: Mapped[str | None] = mapped_column(
        String(FILE_ID_LENGTH),
        ForeignKey("files.id", ondelete="SET NULL", name="fk_batch_jobs_input_file_id_files"),
    )
    output_file_id: Mapped[str | None] = mapped_column(
        String(FILE_ID_LENGTH),
        ForeignKey("files.id", ondelete="SET NULL", name="fk_batch_jobs_output_file_id_files"),
    )
    error_file_id: Mapped[str | None] = mapped_column(
        String(FILE_ID_LENGTH),
        ForeignKey("files.id", ondelete="SET NULL", name="fk_batch_jobs_error_file_id_files"),
    )
    completion_window: Mapped[str] = mapped_column(String(16))
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONColumn)
    errors: Mapped[list[Any] | None] = mapped_column(JSONColumn)
    """The validation report of a job that failed validation: ``{line, code, message}`` each."""
    total: Mapped[int] = mapped_column(Integer)
    owner_key_id: Mapped[str | None] = mapped_column(String(KEY_ID_LENGTH))
    """The API key that created it, as for ``FileRow.owner_key_id``."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    validator_id: Mapped[str | None] = mapped_column(String(WORKER_ID_LENGTH))
    """The worker checking the input of a ``validating`` job (migration 0007)."""
    validation_lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """When another worker may take the validation over (its validator stopped renewing)."""
    validation_claims: Mapped[int] = mapped_column(server_default="0")
    """How often a worker claimed the validation; only the latest claim may write."""
    output_expires_after_s: Mapped[int | None] = mapped_column(Integer)
    """``output_expires_after.seconds``: its output and error files expire that long after they
    are made; None: never (migration 0009)."""


class BatchItemRow(Base):
    __tablename__ = "batch_items"
    __table_args__ = (
        CheckConstraint(one_of("status", ITEM_STATUSES), name="ck_batch_items_status"),
        Index("ix_batch_items_job_id_custom_id", "job_id", "custom_id", unique=True),
        Index("ix_batch_items_job_id_status_line", "job_id", "status", "line"),
        Index("ix_batch_items_worker_id", "worker_id"),
    )

    job_id: Mapped[str] = mapped_column(
        String(BATCH_ID_LENGTH),
        ForeignKey("batch_jobs.id", ondelete="CASCADE", name="fk_batch_items_job_id_batch_jobs"),
        primary_key=True,
    )
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    """1-based line of the input file; output files follow this order."""
    custom_id: Mapped[str | None] = mapped_column(String(CUSTOM_ID_LENGTH))
    """None only for input lines that were invalid (their error line still names it)."""
    body: Mapped[dict[str, Any] | None] = mapped_column(JSONColumn)
    status: Mapped[str] = mapped_column(String(STATUS_LENGTH))
    claims: Mapped[int] = mapped_column(Integer)
    """How often a worker claimed the item; a worker only commits under its own claim."""
    worker_id: Mapped[str | None] = mapped_column(String(WORKER_ID_LENGTH))
    """The worker holding the item, or the one that finished it."""
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    run_id: Mapped[str | None] = mapped_column(String(RUN_ID_LENGTH))
    """The transcript of the attempt that produced the result."""
    output: Mapped[str | None] = mapped_column(Text)
    """The output or error file line, exactly as written (text: JSONB would reorder its keys)."""
    lead_tokens: Mapped[int] = mapped_column(Integer)
    slm_tokens: Mapped[int] = mapped_column(Integer)
    cost_usd: Mapped[float] = mapped_column(Float)
    lead_only_cost_usd: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WorkerRow(Base):
    __tablename__ = "workers"
    __table_args__ = (Index("ix_workers_heartbeat_at", "heartbeat_at"),)

    id: Mapped[str] = mapped_column(String(WORKER_ID_LENGTH), primary_key=True)
    host: Mapped[str] = mapped_column(Text)
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """Renewed while the worker lives; limits to the lead are shared among live workers."""


# The specialist registry (migration 0004): proposals for new specialists, the definitions of
# specialists that exist only here (the built-in ones live in code), and every trained version of
# any specialist with its adapter, evaluation and status. The registry is the source of truth for
# what is served; ``registry_state.generation`` is bumped in the same transaction as every change
# to the active set, so serving processes notice a promotion or rollback with one cheap read.

SPECIALIST_NAME_LENGTH = 64
"""Longest specialist name (a Python identifier, also the LoRA's name on the SLM server)."""
VERSION_STATUSES = ("candidate", "active", "retired")
"""``candidate``: trained, maybe evaluated; ``active``: served; ``retired``: served once."""
PROPOSAL_STATUSES = ("open", "accepted", "dismissed")
SHA256_LENGTH = 64


class WriteProbeRow(Base):
    """One row per prober, rewritten by every readiness probe: proof the database takes writes
    (migration 0007)."""

    __tablename__ = "write_probes"

    name: Mapped[str] = mapped_column(String(WRITE_PROBE_NAME_LENGTH), primary_key=True)
    probed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RegistryStateRow(Base):
    __tablename__ = "registry_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    """Always 1: the table has one row, created by the migration."""
    generation: Mapped[int] = mapped_column(BigInteger)
    """Bumped with every change to the set of active versions."""


class ProposalRow(Base):
    __tablename__ = "specialist_proposals"
    __table_args__ = (
        CheckConstraint(one_of("status", PROPOSAL_STATUSES), name="ck_specialist_proposals_status"),
        Index("ix_specialist_proposals_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(SPECIALIST_NAME_LENGTH))
    description: Mapped[str] = mapped_column(Text)
    examples: Mapped[list[Any]] = mapped_column(JSONColumn)
    run_ids: Mapped[list[Any]] = mapped_column(JSONColumn)
    run_count: Mapped[int] = mapped_column(Integer)
    lead_cost_usd: Mapped[float] = mapped_column(Float)
    window_days: Mapped[float] = mapped_column(Float)
    monthly_savings_usd: Mapped[float] = mapped_column(Float)
    validator: Mapped[str] = mapped_column(String(SPECIALIST_NAME_LENGTH))
    max_tokens: Mapped[int] = mapped_column(Integer)
    nearest_specialist: Mapped[str | None] = mapped_column(String(SPECIALIST_NAME_LENGTH))
    nearest_score: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(STATUS_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RegisteredSpecialistRow(Base):
    __tablename__ = "specialists"

    name: Mapped[str] = mapped_column(String(SPECIALIST_NAME_LENGTH), primary_key=True)
    description: Mapped[str] = mapped_column(Text)
    system_prompt: Mapped[str] = mapped_column(Text)
    validator: Mapped[str] = mapped_column(String(SPECIALIST_NAME_LENGTH))
    examples: Mapped[list[Any]] = mapped_column(JSONColumn)
    max_tokens: Mapped[int] = mapped_column(Integer)
    proposal_id: Mapped[int | None] = mapped_column(
        Integer,
        ForeignKey(
            "specialist_proposals.id",
            ondelete="SET NULL",
            name="fk_specialists_proposal_id_specialist_proposals",
        ),
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SpecialistVersionRow(Base):
    __tablename__ = "specialist_versions"
    __table_args__ = (
        CheckConstraint(one_of("status", VERSION_STATUSES), name="ck_specialist_versions_status"),
        Index("ix_specialist_versions_specialist_version", "specialist", "version", unique=True),
        # At most one active version per specialist, enforced by the database itself.
        Index(
            "ix_specialist_versions_one_active",
            "specialist",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    specialist: Mapped[str] = mapped_column(String(SPECIALIST_NAME_LENGTH))
    """A built-in specialist's name or a row of ``specialists``."""
    version: Mapped[int] = mapped_column(Integer)
    """1, 2, … per specialist."""
    status: Mapped[str] = mapped_column(String(STATUS_LENGTH))
    adapter_path: Mapped[str] = mapped_column(Text)
    adapter_sha256: Mapped[str] = mapped_column(String(SHA256_LENGTH))
    base_model: Mapped[str] = mapped_column(Text)
    lora_rank: Mapped[int] = mapped_column(Integer)
    dataset_path: Mapped[str | None] = mapped_column(Text)
    threshold: Mapped[float | None] = mapped_column(Float)
    """Confidence threshold calibrated on the validation split; None until evaluated."""
    gate_passed: Mapped[bool | None]
    """The evaluation gate's verdict; None until evaluated. Only a pass can be promoted."""
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONColumn)
    replaces_id: Mapped[int | None] = mapped_column(
        Integer,
        ForeignKey(
            "specialist_versions.id",
            ondelete="SET NULL",
            name="fk_specialist_versions_replaces_id_specialist_versions",
        ),
    )
    """The version that was active when this one was promoted: where a rollback returns to."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    evaluated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    promoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# Distillation jobs (migration 0004): build → train → evaluate (→ promote) for one specialist,
# claimed by ``understudy worker`` under a lease like batch items, so a worker that dies leaves
# the job to another, which resumes it (datasets and adapters are found again by content).

JOB_ID_LENGTH = 32
DISTILL_JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
DISTILL_STAGES = ("build", "train", "evaluate", "promote")


class DistillJobRow(Base):
    __tablename__ = "distill_jobs"
    __table_args__ = (
        CheckConstraint(one_of("status", DISTILL_JOB_STATUSES), name="ck_distill_jobs_status"),
        Index("ix_distill_jobs_status_created_at", "status", "created_at"),
        # One unfinished job per specialist: a second one would train the same thing twice.
        Index(
            "ix_distill_jobs_one_open",
            "specialist",
            unique=True,
            sqlite_where=text("status IN ('queued', 'running')"),
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
    )

    id: Mapped[str] = mapped_column(String(JOB_ID_LENGTH), primary_key=True)
    specialist: Mapped[str] = mapped_column(String(SPECIALIST_NAME_LENGTH))
    proposal_id: Mapped[int | None] = mapped_column(
        Integer,
        ForeignKey(
            "specialist_proposals.id",
            ondelete="SET NULL",
            name="fk_distill_jobs_proposal_id_specialist_proposals",
        ),
    )
    trigger: Mapped[str] = mapped_column(String(STATUS_LENGTH))
    """``manual`` (``distill start``) or ``auto`` (a proposal crossed the setting's count)."""
    status: Mapped[str] = mapped_column(String(STATUS_LENGTH))
    stage: Mapped[str | None] = mapped_column(String(STATUS_LENGTH))
    """The step running or last reached: build, train, evaluate, promote."""
    attempts: Mapped[int] = mapped_column(Integer)
    """How often a worker claimed it; a job whose workers keep dying is failed, not retried."""
    worker_id: Mapped[str | None] = mapped_column(String(WORKER_ID_LENGTH))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dataset_path: Mapped[str | None] = mapped_column(Text)
    adapter_path: Mapped[str | None] = mapped_column(Text)
    version_id: Mapped[int | None] = mapped_column(
        Integer,
        ForeignKey(
            "specialist_versions.id",
            ondelete="SET NULL",
            name="fk_distill_jobs_version_id_specialist_versions",
        ),
    )
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
