"""Uploaded files, batch jobs, their items and the workers that run them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from database.tables.base import (
    KEY_ID_LENGTH,
    MODE_LENGTH,
    RUN_ID_LENGTH,
    STATUS_LENGTH,
    WORKER_ID_LENGTH,
    Base,
    JSONColumn,
    UTCDateTime,
    one_of,
)

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
BATCH_STATUSES = ("validating", "failed", "in_progress", "completed", "cancelling", "cancelled")
ITEM_STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")


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
