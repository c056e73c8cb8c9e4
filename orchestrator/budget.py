"""Every run's budget: seconds, lead turns and lead tokens.

Seconds are a deadline the orchestrator keeps (``asyncio.timeout``), turns are the agent loop's
``max_turns``, and tokens are counted by :class:`TokenBudget` as each lead call ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents import RunContextWrapper, RunHooks

from tools.context import ToolDeps


@dataclass(frozen=True, slots=True)
class RunBudget:
    """Limits of one run."""

    max_seconds: float = 120.0
    max_lead_turns: int = 8
    max_lead_tokens: int = 60_000


class TokenBudgetExceeded(Exception):
    """The lead spent the run's token budget; raised inside the agent loop to stop it."""


class TokenBudget(RunHooks[ToolDeps]):
    """Stops the lead once a run has spent its token budget."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent = 0

    async def on_llm_end(
        self, context: RunContextWrapper[ToolDeps], agent: Any, response: Any
    ) -> None:
        usage = getattr(response, "usage", None)
        self.spent += int(getattr(usage, "total_tokens", 0) or 0)
        if self.spent > self.limit:
            raise TokenBudgetExceeded(f"lead used {self.spent} tokens; the budget is {self.limit}")
