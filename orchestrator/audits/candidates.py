"""Which runs answered with a specialist's answer that no lead checked.

Three ways, each named by its ``source``: ``slm`` mode (no lead at all), a cascade that accepted
its draft, and a ``router`` run whose lead passed a specialist's answer on verbatim. A degraded
run's fallback is not one: it is flagged to its caller already, and its lead failed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from orchestrator.audits.records import AuditCandidate
from orchestrator.outcome import RunResult
from specialists.adapters import served_adapter_name
from specialists.backend import ChatMessage
from specialists.catalog import Catalog, Specialist
from tools.context import ToolCall


def version_label(specialist: Specialist) -> str:
    """The version an answer came from: the registry's tag, else the settings adapter's
    content tag, else ``base`` (the base model with the specialist's prompt)."""
    if specialist.version:
        return specialist.version
    if specialist.adapter is not None:
        return served_adapter_name(specialist).removeprefix(f"{specialist.name}@")
    return "base"


def audit_candidate(
    result: RunResult,
    messages: Sequence[ChatMessage],
    calls: Sequence[ToolCall],
    catalog: Catalog,
) -> AuditCandidate | None:
    """The run's unchecked specialist answer, or ``None`` when a lead checked it (or the run
    has no clean answer)."""
    if result.answer is None or result.failure is not None or result.degraded:
        return None
    name: str | None = None
    source = result.mode
    confidence = result.confidence  # the answering specialist's, in slm and cascade runs
    if result.mode == "slm":
        name = result.route.removeprefix("slm:")
    elif result.route.startswith("cascade:accepted:"):
        name = result.route.removeprefix("cascade:accepted:")
    elif result.mode == "router":
        call = _passed_through(result.answer, calls)
        # The run's confidence is the least of every specialist it asked: take the repeated one's.
        name, confidence = (call.specialist, call.confidence) if call else (None, None)
    if name is None or name not in catalog.names:
        return None
    specialist = catalog.get(name)
    return AuditCandidate(
        run_id=result.run_id,
        specialist=name,
        version=version_label(specialist),
        judge=specialist.validator,
        messages=list(messages),
        answer=result.answer,
        source=source,
        confidence=confidence,
    )


def _passed_through(answer: str, calls: Sequence[ToolCall]) -> ToolCall | None:
    """The specialist call whose answer the lead's answer repeats verbatim (whitespace aside),
    read from the specialist tool's JSON output (``answer``, :mod:`tools.function_tools`)."""
    for call in calls:
        if call.specialist is None or call.error is not None:
            continue
        try:
            said = json.loads(call.output).get("answer")
        except (ValueError, AttributeError):
            continue
        if isinstance(said, str) and said.strip() == answer.strip():
            return call
    return None
