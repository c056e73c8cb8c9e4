"""The lead's side: modes, the lead model, pre-routing, cost and transcripts.

``Orchestrator(...).run(request, mode)`` is the entry point every surface (CLI, chat API, batch,
evals) calls. Names are imported lazily: ``orchestrator.transcripts`` or ``orchestrator.modes``
must not pay for loading the agents SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.cost import Price, PriceBook
    from orchestrator.lead import LeadConfig, LeadUnavailable
    from orchestrator.modes import Mode
    from orchestrator.run import InvalidRequest, Orchestrator, RunBudget, RunResult

_EXPORTS = {
    "InvalidRequest": "orchestrator.run",
    "LeadConfig": "orchestrator.lead",
    "LeadUnavailable": "orchestrator.lead",
    "Mode": "orchestrator.modes",
    "Orchestrator": "orchestrator.run",
    "Price": "orchestrator.cost",
    "PriceBook": "orchestrator.cost",
    "RunBudget": "orchestrator.run",
    "RunResult": "orchestrator.run",
}

__all__ = [
    "InvalidRequest",
    "LeadConfig",
    "LeadUnavailable",
    "Mode",
    "Orchestrator",
    "Price",
    "PriceBook",
    "RunBudget",
    "RunResult",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
