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

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, Text
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
