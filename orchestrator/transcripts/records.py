"""What the transcript store keeps, as plain dataclasses.

These are the objects the orchestrator builds while it answers and the ones every reader (CLI,
HTTP API, distillation) gets back. They are deliberately separate from the ORM rows in
:mod:`database.tables`, so nothing outside the store ever holds a live session object.

A run's record *is* its :class:`~orchestrator.outcome.RunResult` plus what it was asked and
every call it made; a tool call is the :class:`~tools.context.ToolCall` the tool reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrator.outcome import RunResult
from specialists.backend import ChatMessage
from tools.context import ToolCall


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class LeadCallRecord:
    """One call to the lead LLM, kept whole so it can be replayed or distilled later."""

    model: str
    """The model name as the lead client addressed it."""
    messages: list[dict[str, Any]]
    """The full input message list, system prompt included."""
    output: list[dict[str, Any]]
    """Output items, tool calls included, as JSON-able dicts."""
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_ms: float
    error: str | None = None
    """Why the call failed, if it did; the run may still have an answer from a fallback."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord(RunResult):
    """One answered request as the store keeps it: the run's result, what came in, and every
    lead call and tool call it made.

    Its ``run_id`` is caller-chosen and unique (``uuid4().hex`` by default), so batch jobs can
    make saving idempotent.
    """

    input_messages: list[dict[str, Any]]
    """The conversation the run answered: the caller's messages, with the turns of the run it
    continues (``continues_run_id``) in place of the assistant message the caller echoed."""
    created_at: datetime = field(default_factory=_now)
    """Timezone-aware; the store returns it in UTC."""
    lead_calls: list[LeadCallRecord] = field(default_factory=list)
    """In call order; empty in :meth:`TranscriptStore.list_runs` results."""
    tool_calls: list[ToolCall] = field(default_factory=list)
    """In call order, the specialist calls the orchestrator made itself (``slm`` mode, the
    cascade's draft) included; empty in :meth:`TranscriptStore.list_runs` results."""
    lead_turn: list[ChatMessage] = field(default_factory=list)
    """With ``app_tool_calls``: the run's turns as the lead made them (its calls of our tools
    and of the caller's, our tools' results), which a follow-up answering those calls gets
    back in place of the assistant message it echoes (:mod:`orchestrator.handover`)."""
    owner_key_id: str | None = None
    """The API key whose request the run answered; only that key's follow-ups continue it.
    ``None``: nobody in particular (authentication off, the CLI)."""


@dataclass
class FeedbackRecord:
    """A user's judgement of a run; the signal distillation filters transcripts by."""

    run_id: str
    score: float
    """From -1.0 (wrong or harmful) to 1.0 (exactly right)."""
    comment: str | None
    created_at: datetime
    """When the feedback was given, in UTC."""
