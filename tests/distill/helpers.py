"""Transcripts for registry tests: the narrow task a scripted lead keeps answering, and others."""

from __future__ import annotations

import itertools
import random
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from orchestrator.transcripts import LeadCallRecord, RunRecord
from tools.context import ToolCall

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
OPENERS = ("Hi,", "Hello,", "Good morning,", "Hey there,", "Quick question:", "Excuse me,")
QUESTIONS = (
    "when does the museum open on {day}",
    "what time does the museum open on {day}",
    "is the museum open on {day} morning",
    "at what hour can I visit the museum on {day}",
    "until when is the museum open on {day}",
    "can we visit the museum on {day} afternoon",
    "what are the museum opening hours on {day}",
    "how late does the museum stay open on {day}",
)
CLOSERS = ("?", "? Thanks.", "? We are a group of {n}.", "? I am coming with my kids.")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
HOURS_ANSWER = "Tuesday to Sunday, 10am to 6pm."
"""What the (scripted) lead answers every museum-hours question with: correct every time."""


def museum_hours_questions(count: int, *, seed: int = 0) -> list[str]:
    """``count`` differently worded questions about the museum's opening hours."""
    rng = random.Random(seed)
    combos = list(itertools.product(OPENERS, QUESTIONS, CLOSERS))
    rng.shuffle(combos)
    return [
        f"{opener} {question.format(day=rng.choice(DAYS))}{closer.format(n=rng.randint(3, 30))}"
        for opener, question, closer in combos[:count]
    ]


def lead_run(query: str, answer: str, *, minute: int, cost: float = 0.002) -> RunRecord:
    """A run the lead answered itself (router mode, no specialist consulted)."""
    return RunRecord(
        run_id=uuid.uuid4().hex,
        mode="router",
        input_messages=[{"role": "user", "content": query}],
        answer=answer,
        route="router",
        specialists=[],
        escalated=False,
        degraded=False,
        confidence=None,
        lead_input_tokens=120,
        lead_output_tokens=12,
        slm_prompt_tokens=0,
        slm_completion_tokens=0,
        cost_usd=cost,
        lead_only_cost_usd=cost,
        latency_ms=800.0,
        created_at=EPOCH + timedelta(minutes=minute),
        lead_calls=[
            LeadCallRecord(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": query}],
                output=[{"type": "message", "content": answer}],
                input_tokens=120,
                output_tokens=12,
                cost_usd=cost,
                latency_ms=800.0,
            )
        ],
    )


def delegated_run(query: str, answer: str, specialist: str, *, minute: int) -> RunRecord:
    """A run where the lead delegated to ``specialist`` (so not the lead's own work)."""
    return replace(
        lead_run(query, answer, minute=minute),
        specialists=[specialist],
        tool_calls=[ToolCall(f"{specialist}_specialist", {"request": query}, answer, 30.0, 0.9)],
    )
