"""The lead's side: modes, the lead model, pre-routing, cost and transcripts.

``Orchestrator(...).run(request, mode)`` is the entry point every surface (CLI, chat API, batch,
evals) calls.
"""

from orchestrator.cost import Price, PriceBook
from orchestrator.lead import LeadConfig, LeadUnavailable
from orchestrator.run import InvalidRequest, Mode, Orchestrator, RunBudget, RunResult

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
