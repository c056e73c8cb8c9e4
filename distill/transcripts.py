"""What distillation reads: one answered run and what users said of it, as plain data.

The dataset builder reads these rather than the transcript store's records, so it can be fed
from any source — the store (:mod:`distill.source` converts its runs and their feedback), an
export, a test — and needs none of a run's token counts and costs. Its tool calls are the one
tool-call type, :class:`tools.context.ToolCall`, as the transcript store keeps them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from tools.context import ToolCall


@dataclass(frozen=True, slots=True)
class Transcript:
    """One run: what was asked, who answered, how it went, and what users said about it."""

    run_id: str
    created_at: datetime
    """Orders transcripts, so that building a dataset twice gives the same files."""
    input_messages: tuple[Mapping[str, str], ...]
    """The request as chat messages, ending with the user's turn."""
    answer: str | None
    """The final answer the user got; ``None`` when the run produced none."""
    route: str
    """Where the answer came from: ``router``, ``cascade:escalated:math``, ``slm:math``, …"""
    specialists: tuple[str, ...] = ()
    """Specialists consulted, in call order."""
    escalated: bool = False
    """The cascade rejected a specialist's draft and the lead answered instead."""
    degraded: bool = False
    """The lead failed and the answer came from a fallback."""
    error: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    """The run's tool calls, each naming its specialist where it called one."""
    feedback: tuple[float, ...] = ()
    """Users' scores of the run, each from -1.0 (wrong) to 1.0 (exactly right)."""

    @property
    def query(self) -> str:
        """The user's last message: the request the run answered."""
        for message in reversed(self.input_messages):
            if message.get("role") == "user":
                return str(message.get("content") or "")
        return ""
