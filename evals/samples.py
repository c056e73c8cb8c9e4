"""What flows through an evaluation: a sample, the system's prediction for it, and its score.

Plain frozen dataclasses with JSON-serialisable contents, so the harness can store samples,
predictions and scores in reports and re-score them later without the data set at hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Sample:
    """One item of a suite, as the orchestrator is asked it and as the scorer checks it."""

    id: str
    """Stable across runs and machines, e.g. ``"gsm8k:test:17"``."""
    suite: str
    messages: tuple[dict[str, str], ...]
    """The chat messages sent to the orchestrator (``role``/``content``), written as a user
    would write them: no grading instructions, no answer format imposed."""
    reference: Any
    """What the scorer compares with (JSON-serialisable)."""
    domain: str | None = None
    """The specialist that should handle it (``math``, ``code``, ``email``), or ``None``."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """JSON-serialisable extras (reference solution, category, source data set, …)."""

    @property
    def prompt(self) -> str:
        """The last user message: the request itself."""
        return next(m["content"] for m in reversed(self.messages) if m["role"] == "user")


@dataclass(frozen=True, slots=True)
class Prediction:
    """What the system under test answered for a sample."""

    answer: str | None
    """The final answer text; ``None`` when the run failed."""
    route: str | None = None
    """The orchestrator's route or the pre-router's decision, e.g. ``"math"`` or ``"none"``."""
    specialists: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Score:
    """How good a prediction is."""

    value: float
    """In [0, 1]: exact scorers give 0 or 1, ROUGE-L its F1, a judge its rating / 10."""
    details: dict[str, Any] = field(default_factory=dict)
    """Why: the extracted answer, the failing test, the judge's reply, …"""


def user_message(content: str) -> dict[str, str]:
    """A chat message from the user."""
    return {"role": "user", "content": content}


NO_ANSWER = Score(0.0, {"error": "no answer (the run failed)"})
"""The score of a prediction whose run failed, in every suite."""
