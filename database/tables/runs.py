"""Runs and what they recorded: lead calls, tool calls, calls handed over to the caller and
feedback."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from database.tables.base import (
    CALL_ID_LENGTH,
    FAILURE_KIND_LENGTH,
    FINISH_REASON_LENGTH,
    KEY_ID_LENGTH,
    MODE_LENGTH,
    RUN_ID_LENGTH,
    Base,
    JSONColumn,
    UTCDateTime,
)


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_created_at", "created_at"),
        Index("ix_runs_mode", "mode"),
        Index("ix_runs_continues_run_id", "continues_run_id"),
        # A specialist's accepted answers by route and time: the ROI ledger (0016).
        Index("ix_runs_route_created_at", "route", "created_at"),
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
    difficulty: Mapped[dict[str, Any] | None] = mapped_column(JSONColumn)
    """Cascade's difficulty skip (``DifficultyDecision.as_dict``); NULL without a target share
    of lead calls (migration 0018)."""
    finish_reason: Mapped[str] = mapped_column(
        String(FINISH_REASON_LENGTH), server_default=text("'stop'")
    )
    """``stop``, ``length`` or ``tool_calls`` (migration 0008); earlier runs read ``stop``, what
    they reported."""
    app_tool_calls: Mapped[list[Any] | None] = mapped_column(JSONColumn)
    """The calls of the caller's own tools the run answered with (``finish_reason`` ``tool_calls``:
    ``{id, name, arguments}`` each), so a replayed run answers them again (migration 0010);
    NULL when it made none."""
    lead_turn: Mapped[list[Any] | None] = mapped_column(JSONColumn)
    """With ``app_tool_calls``: the run's turns, for the follow-up (0011); else NULL."""
    owner_key_id: Mapped[str | None] = mapped_column(String(KEY_ID_LENGTH))
    """The API key whose request it answered (0011); NULL: nobody in particular (no auth, CLI)."""
    continues_run_id: Mapped[str | None] = mapped_column(String(RUN_ID_LENGTH))
    """The run whose handed-over calls this one answered (0011); not a foreign key."""
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


class HandedOverCallRow(Base):
    """A call of the caller's tools a run handed over (0011), for its owner to continue."""

    __tablename__ = "handed_over_calls"

    call_id: Mapped[str] = mapped_column(String(CALL_ID_LENGTH), primary_key=True)
    run_id: Mapped[str] = mapped_column(
        String(RUN_ID_LENGTH),
        ForeignKey("runs.id", ondelete="CASCADE", name="fk_handed_over_calls_run_id_runs"),
    )


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
