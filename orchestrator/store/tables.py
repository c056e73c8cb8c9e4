"""The transcript store's tables, as SQLAlchemy 2 typed ORM classes.

These rows never leave :mod:`orchestrator.store.store`; callers get the dataclasses of
:mod:`orchestrator.store.records`. The hand-written migration
``migrations/versions/0001_initial.py`` creates exactly these tables, and a test compares the two.
Constraint and index names are spelled out so the migration and the metadata cannot drift apart
through a naming convention.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

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
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

RUN_ID_LENGTH = 64
"""Longest run id; uuid4 hex ids use 32."""
MODE_LENGTH = 32
"""Longest mode name (``llm``, ``slm``, ``router``, ``cascade``)."""

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
