"""What tools need at run time, and what they report back for the transcript."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tools.sandbox import SandboxLimits

if TYPE_CHECKING:  # annotations only: the transcript store imports ToolCall without a backend
    from specialists.backend import SLMBackend
    from specialists.catalog import Catalog


@dataclass(slots=True)
class ToolCall:
    """One tool call made during a run (a specialist, the calculator or ``run_python``), as the
    tool reported it and the transcript keeps it."""

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
    specialist: str | None = None
    """The specialist called, for specialist calls only."""
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
