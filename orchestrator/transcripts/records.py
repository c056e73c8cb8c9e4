"""What the transcript store keeps, as plain dataclasses.

These are the objects the orchestrator builds while it answers and the ones every reader (CLI,
HTTP API, distillation) gets back. They are deliberately separate from the ORM rows in
:mod:`database.tables`, so nothing outside the store ever holds a live session object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


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


@dataclass
class ToolCallRecord:
    """One tool call made during a run: a specialist, the calculator or ``run_python``."""

    name: str
    """The tool name the lead used."""
    input: dict[str, Any]
    """The arguments, as the lead sent them."""
    output: str
    """What the tool returned to the lead (text, as the lead saw it)."""
    latency_ms: float
    confidence: float | None = None
    """The specialist's confidence, for specialist calls only."""
    error: str | None = None


@dataclass
class RunRecord:
    """One answered request: what came in, what went out, what it cost and how it was routed."""

    id: str
    """Caller-chosen unique id (``uuid4().hex``), so batch jobs can make saving idempotent."""
    mode: str
    """``llm``, ``slm``, ``router`` or ``cascade``."""
    input_messages: list[dict[str, Any]]
    answer: str | None
    route: str
    """Where the answer came from: ``lead``, ``slm:math``, ``cascade:accepted:math``, …"""
    specialists: list[str]
    """Specialists consulted, in call order."""
    escalated: bool
    """The cascade handed the question to the lead after a specialist's answer was rejected."""
    degraded: bool
    """Part of the pipeline failed and the answer came from a fallback."""
    confidence: float | None
    lead_input_tokens: int
    lead_output_tokens: int
    slm_prompt_tokens: int
    slm_completion_tokens: int
    cost_usd: float
    lead_only_cost_usd: float
    """What the same tokens would have cost on the lead alone: the baseline for savings."""
    latency_ms: float
    error: str | None = None
    created_at: datetime = field(default_factory=_now)
    """Timezone-aware; the store returns it in UTC."""
    lead_calls: list[LeadCallRecord] = field(default_factory=list)
    """In call order; empty in :meth:`TranscriptStore.list_runs` results."""
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    """In call order; empty in :meth:`TranscriptStore.list_runs` results."""


@dataclass
class FeedbackRecord:
    """A user's judgement of a run; the signal distillation filters transcripts by."""

    run_id: str
    score: float
    """From -1.0 (wrong or harmful) to 1.0 (exactly right)."""
    comment: str | None
    created_at: datetime
    """When the feedback was given, in UTC."""
