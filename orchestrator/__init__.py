"""The lead's side: modes, the lead model, pre-routing, cost and transcripts.

``Orchestrator(...).run(request, mode)`` is the entry point every surface (CLI, chat API, batch,
evals) calls; it returns a :class:`RunResult`, whose ``failure`` (a :class:`FailureKind` and a
message) says why a run has no answer. Names are imported lazily: ``orchestrator.transcripts``
or ``orchestrator.modes`` must not pay for loading the agents SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.budget import RunBudget
    from orchestrator.cost import Price, PriceBook
    from orchestrator.lead import LeadConfig, LeadFailed
    from orchestrator.modes import Mode
    from orchestrator.options import CallOptions
    from orchestrator.outcome import Failure, FailureKind, RunResult
    from orchestrator.request import (
        InvalidRequest,
        OverLimit,
        RequestLimits,
        UnsupportedParameter,
    )
    from orchestrator.run import Orchestrator

_EXPORTS = {
    "CallOptions": "orchestrator.options",
    "Failure": "orchestrator.outcome",
    "FailureKind": "orchestrator.outcome",
    "InvalidRequest": "orchestrator.request",
    "LeadConfig": "orchestrator.lead",
    "LeadFailed": "orchestrator.lead",
    "Mode": "orchestrator.modes",
    "Orchestrator": "orchestrator.run",
    "OverLimit": "orchestrator.request",
    "Price": "orchestrator.cost",
    "PriceBook": "orchestrator.cost",
    "RequestLimits": "orchestrator.request",
    "RunBudget": "orchestrator.budget",
    "RunResult": "orchestrator.outcome",
    "UnsupportedParameter": "orchestrator.request",
}

__all__ = [
    "CallOptions",
    "Failure",
    "FailureKind",
    "InvalidRequest",
    "LeadConfig",
    "LeadFailed",
    "Mode",
    "Orchestrator",
    "OverLimit",
    "Price",
    "PriceBook",
    "RequestLimits",
    "RunBudget",
    "RunResult",
    "UnsupportedParameter",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
