"""The audit queue's table (migrations 0013, 0015).

A row is one specialist answer no lead checked, waiting for the lead to answer the same request
(``queued``), held by a worker under a lease (``running``), judged (``done``), or given up on
(``failed``: the lead refused the request itself). Not a foreign key to ``runs``: a run whose
record waits in the spool is audited all the same.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from database.tables.base import (
    RUN_ID_LENGTH,
    STATUS_LENGTH,
    WORKER_ID_LENGTH,
    Base,
    JSONColumn,
    UTCDateTime,
    one_of,
)
from database.tables.registry import SPECIALIST_NAME_LENGTH

AUDIT_STATUSES = ("queued", "running", "done", "failed")
VERSION_LABEL_LENGTH = 64
"""Longest version label (``v12-1f2e3d4c``, an adapter's content tag, ``base``)."""


class AuditRow(Base):
    __tablename__ = "audits"
    __table_args__ = (
        CheckConstraint(one_of("status", AUDIT_STATUSES), name="ck_audits_status"),
        Index("ix_audits_run_id", "run_id", unique=True),
        Index("ix_audits_status_created_at", "status", "created_at"),
        Index("ix_audits_specialist_version_finished_at", "specialist", "version", "finished_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(RUN_ID_LENGTH))
    specialist: Mapped[str] = mapped_column(String(SPECIALIST_NAME_LENGTH))
    version: Mapped[str] = mapped_column(String(VERSION_LABEL_LENGTH))
    judge: Mapped[str] = mapped_column(String(SPECIALIST_NAME_LENGTH))
    """The agreement judge (the specialist's validator name)."""
    source: Mapped[str] = mapped_column(String(STATUS_LENGTH))
    """``cascade``, ``slm`` or ``router``: how the answer went unchecked."""
    messages: Mapped[list[Any]] = mapped_column(JSONColumn)
    answer: Mapped[str] = mapped_column(Text)
    confidence: Mapped[float | None] = mapped_column(Float)
    """The specialist's confidence in the answer (migration 0015; ``None`` before it, or when
    the route had none): what thresholds are re-fitted on."""
    status: Mapped[str] = mapped_column(String(STATUS_LENGTH))
    attempts: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[str | None] = mapped_column(String(WORKER_ID_LENGTH))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lead_answer: Mapped[str | None] = mapped_column(Text)
    agreed: Mapped[bool | None]
    score: Mapped[float | None] = mapped_column(Float)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONColumn)
    cost_usd: Mapped[float] = mapped_column(Float)
    """Audit spend: what every lead call of every attempt cost, failed ones included."""
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
