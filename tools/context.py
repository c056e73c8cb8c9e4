"""What tools need at run time, and what they report back for the transcript."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from specialists.backend import SLMBackend
from specialists.catalog import Catalog
from tools.sandbox import SandboxLimits


@dataclass(slots=True)
class ToolCall:
    """One tool invocation as the transcript keeps it."""

    name: str
    input: dict[str, Any]
    output: str
    latency_ms: float
    confidence: float | None = None
    error: str | None = None
    specialist: str | None = None
    slm_prompt_tokens: int = 0
    slm_completion_tokens: int = 0


@dataclass(slots=True)
class ToolDeps:
    """The run context the agent passes to every tool (``RunContextWrapper.context``).

    Tools append to ``calls``; the orchestrator turns them into the run's transcript and totals.
    """

    backend: SLMBackend
    catalog: Catalog
    sandbox: SandboxLimits = field(default_factory=SandboxLimits)
    calls: list[ToolCall] = field(default_factory=list)
    deadline: float | None = None
    """``time.monotonic()`` by which the run must end; no tool call outlives it. ``None``: only
    each tool's own limits apply."""

    def remaining_s(self) -> float | None:
        """Seconds left of the run's budget (never negative); ``None`` without a deadline."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    @property
    def specialists_used(self) -> list[str]:
        """Specialists called in this run, in first-call order."""
        seen: dict[str, None] = {}
        for call in self.calls:
            if call.specialist:
                seen.setdefault(call.specialist)
        return list(seen)
