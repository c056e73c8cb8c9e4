"""The specialist registry and the distillation jobs that feed it."""

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
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from database.tables.base import (
    STATUS_LENGTH,
    WORKER_ID_LENGTH,
    Base,
    JSONColumn,
    UTCDateTime,
    one_of,
)

# The specialist registry (migration 0004): proposals for new specialists, the definitions of
# specialists that exist only here (the built-in ones live in code), and every trained version of
# any specialist with its adapter, evaluation and status. The registry is the source of truth for
# what is served; ``registry_state.generation`` is bumped in the same transaction as every change
# to the active set, so serving processes notice a promotion or rollback with one cheap read.

SPECIALIST_NAME_LENGTH = 64
"""Longest specialist name (a Python identifier, also the LoRA's name on the SLM server)."""
VERSION_STATUSES = ("candidate", "canary", "active", "retired", "rejected")
"""``candidate``: trained, maybe evaluated; ``canary``: serves a share of its specialist's
traffic; ``active``: served; ``retired``: served once; ``rejected``: a canary that failed."""
RETIRE_REASON_LENGTH = 32
EVENT_KIND_LENGTH = 32
ACTOR_LENGTH = 64
PROPOSAL_STATUSES = ("open", "accepted", "dismissed")
SHA256_LENGTH = 64


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
        # At most one canary per specialist (migration 0014).
        Index(
            "ix_specialist_versions_one_canary",
            "specialist",
            unique=True,
            sqlite_where=text("status = 'canary'"),
            postgresql_where=text("status = 'canary'"),
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
    canary_share: Mapped[float | None] = mapped_column(Float)
    """The share of its specialist's traffic a canary serves (kept after it concludes)."""
    retire_reason: Mapped[str | None] = mapped_column(String(RETIRE_REASON_LENGTH))
    """Why a retired version left service: ``rolled_back``, ``superseded`` or ``demoted``."""


# The registry's history (migration 0014): one event per change, written in the change's own
# transaction, and the specialists an operator paused (built-in ones included, which have no
# version row to mark).


class SpecialistEventRow(Base):
    __tablename__ = "specialist_events"
    __table_args__ = (
        Index("ix_specialist_events_specialist_created_at", "specialist", "created_at"),
        Index("ix_specialist_events_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    specialist: Mapped[str] = mapped_column(String(SPECIALIST_NAME_LENGTH))
    version_id: Mapped[int | None] = mapped_column(
        Integer,
        ForeignKey(
            "specialist_versions.id",
            ondelete="SET NULL",
            name="fk_specialist_events_version_id_specialist_versions",
        ),
    )
    """The version the change concerns; ``None`` for pause and resume."""
    kind: Mapped[str] = mapped_column(String(EVENT_KIND_LENGTH))
    reason: Mapped[str] = mapped_column(Text)
    figures: Mapped[dict[str, Any]] = mapped_column(JSONColumn)
    """What the decision was made on (audit counts, interval, shares, thresholds)."""
    actor: Mapped[str] = mapped_column(String(ACTOR_LENGTH))
    """Who made it: ``cli``, ``worker``, ``distill``…"""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PausedSpecialistRow(Base):
    __tablename__ = "paused_specialists"

    name: Mapped[str] = mapped_column(String(SPECIALIST_NAME_LENGTH), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    paused_at: Mapped[datetime] = mapped_column(UTCDateTime())


# Distillation jobs (migration 0004): build → train → evaluate (→ promote) for one specialist,
# claimed by ``understudy worker`` under a lease like batch items, so a worker that dies leaves
# the job to another, which resumes it (datasets and adapters are found again by content).

JOB_ID_LENGTH = 32
DISTILL_JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
DISTILL_STAGES = ("build", "train", "evaluate", "promote")
DEVICE_KIND_LENGTH = 16
"""Longest device kind a job trained on (torch's ``device.type``: ``cpu``, ``cuda``)."""


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
    train_seconds: Mapped[float] = mapped_column(Float, server_default=text("0"))
    """Wall-clock seconds its workers spent in the train step, every attempt added (0016)."""
    evaluate_seconds: Mapped[float] = mapped_column(Float, server_default=text("0"))
    """Wall-clock seconds its workers spent in the evaluate step, every attempt added (0016)."""
    device: Mapped[str | None] = mapped_column(String(DEVICE_KIND_LENGTH))
    """The device kind it trained on, ``cpu`` or ``cuda`` (0016); NULL before training."""
    training: Mapped[dict[str, Any] | None] = mapped_column(JSONColumn)
    """Its training's last progress reading: step, total, loss curve (0019, see
    ``distill/progress.py``); NULL before training."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
