"""Transcripts and datasets for distillation tests, built the way the orchestrator records runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from distill.dataset import DistillTarget, build_dataset, save_dataset
from distill.transcripts import Transcript
from tools.context import ToolCall

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
MATH = DistillTarget("math", "Reply with the number.", validator="numeric_answer")


def escalated(index: int, question: str, answer: str, **fields: Any) -> Transcript:
    """A cascade run: the math specialist's draft was rejected and the lead answered."""
    values: dict[str, Any] = {
        "run_id": f"run-{index:04d}",
        "created_at": EPOCH + timedelta(minutes=index),
        "input_messages": ({"role": "user", "content": question},),
        "answer": answer,
        "route": "cascade:escalated:math",
        "specialists": ("math",),
        "escalated": True,
        "tool_calls": (
            ToolCall(
                "math_specialist", {"request": question}, "a wrong draft", 0.0, specialist="math"
            ),
        ),
    }
    values.update(fields)
    return Transcript(**values)


def sums(count: int, *, start: int = 0) -> list[Transcript]:
    """``count`` distinct, correctly answered addition requests."""
    return [
        escalated(
            i,
            f"What is {i * 37 % 101} plus {i * 53 % 97 + i}?",
            str(i * 37 % 101 + i * 53 % 97 + i),
        )
        for i in range(start, start + count)
    ]


def saved_dataset(root: Path, transcripts: list[Transcript]) -> Path:
    built = build_dataset(transcripts, MATH)
    return save_dataset(built, root / built.card.sha256[:12])
