"""What a run produced: :class:`RunResult`, and the typed :class:`Failure` it carries.

One type for a run's outcome. The transcript store's :class:`~orchestrator.transcripts.RunRecord`
and the evaluations' item derive from it (:meth:`RunResult.derive`), the batch store's item
result embeds it, and every surface reads the same fields.

A run that fails says *how* with a :class:`FailureKind`, so callers decide what to do on the
kind — the batch runner retries :attr:`FailureKind.retryable` kinds and sends the others to the
error file — and never on the text, which is for people.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Self

from orchestrator.difficulty import DifficultyDecision
from specialists.backend import FunctionCall, TokenLogprob

FinishReason = Literal["stop", "length", "tool_calls"]
"""How an answer ended, in OpenAI's words."""
FINISH_REASONS: tuple[FinishReason, ...] = typing.get_args(FinishReason)


class FailureKind(StrEnum):
    """Why a run ended without an answer, or answered only from a fallback (``degraded``)."""

    lead_unavailable = "lead_unavailable"
    """The lead could not be reached or failed on its side (connection error, 5xx)."""
    lead_rate_limited = "lead_rate_limited"
    """The lead's provider said 429."""
    lead_timeout = "lead_timeout"
    """A lead call, or the run's time budget, ran out while the lead was working."""
    lead_refused = "lead_refused"
    """The lead's provider refused the request itself (400, 401, 403, 404, 422, …): the same
    request would be refused again."""
    lead_invalid_output = "lead_invalid_output"
    """The lead answered with something the agent loop cannot use (a call to a tool that does
    not exist, arguments that are not JSON); sampling again may do better."""
    budget_exhausted = "budget_exhausted"
    """The run spent its lead turns or lead tokens: the same request would spend them again."""
    run_timeout = "run_timeout"
    """The run's time budget ran out outside a lead call: while the pre-router chose a
    specialist, or a specialist the orchestrator asked itself (``slm``, the cascade's draft)
    was answering."""
    specialist_unavailable = "specialist_unavailable"
    """The specialist's backend could not be reached in time (``slm`` mode has no fallback)."""
    specialist_failed = "specialist_failed"
    """The specialist's backend refused the call or answered with something unusable."""
    invalid_format = "invalid_format"
    """The answer was not the JSON the request's ``response_format`` asks for (the lead's, or a
    specialist's where no other model could answer); it was withheld, not passed off as
    valid. Not retried: the same request mostly gets the same shape."""
    shutdown = "shutdown"
    """The server stopped before the run ended: its drain ran out with the run still going.
    Another server (or this one, restarted) can answer the same request."""
    invalid_request = "invalid_request"
    """The request was refused before anything ran (evaluations record such samples)."""
    unclassified = "unclassified"
    """Recorded before failures had kinds (schema 0004 and earlier); retried, as then."""

    @property
    def retryable(self) -> bool:
        """Whether another attempt of the same request can succeed where this one failed."""
        return self in _RETRYABLE


_RETRYABLE = frozenset(
    {
        FailureKind.lead_unavailable,
        FailureKind.lead_rate_limited,
        FailureKind.lead_timeout,
        FailureKind.lead_invalid_output,
        FailureKind.specialist_unavailable,
        FailureKind.run_timeout,
        FailureKind.shutdown,
        FailureKind.unclassified,
    }
)


@dataclass(frozen=True, slots=True)
class Failure:
    """What went wrong in a run: a kind to act on, and a message for people."""

    kind: FailureKind
    message: str


@dataclass(frozen=True, slots=True)
class RunResult:
    """What a run answered, how, and at what cost — and, if it failed, why."""

    run_id: str
    mode: str
    """``llm``, ``slm``, ``router`` or ``cascade``."""
    answer: str | None
    route: str
    """Where the answer came from: ``lead``, ``slm:math``, ``cascade:accepted:math``, …"""
    specialists: list[str]
    """Specialists consulted, in first-call order."""
    escalated: bool
    """The cascade handed the question to the lead after a specialist's answer was rejected."""
    degraded: bool
    """Part of the pipeline failed and the answer came from a fallback (``failure`` says why)."""
    confidence: float | None
    lead_input_tokens: int
    lead_output_tokens: int
    slm_prompt_tokens: int
    slm_completion_tokens: int
    cost_usd: float
    lead_only_cost_usd: float
    """What the same tokens would have cost on the lead alone: the baseline for savings."""
    latency_ms: float
    failure: Failure | None = None
    """Why there is no answer, or why the answer is degraded; ``None`` for a clean run."""
    route_scores: dict[str, float] = field(default_factory=dict)
    """The pre-router's score of each specialist, when it was asked."""
    finish_reason: FinishReason = "stop"
    """How the answer ended: ``stop`` (complete), ``length`` (a specialist's answer cut at
    ``max_tokens``) or ``tool_calls`` (the lead called the caller's own tools). A lead's text
    answer reports ``stop``: the agents SDK does not hand over its model's finish reason. Kept
    in transcripts (schema 0008), so a replayed run says it too."""
    logprobs: tuple[TokenLogprob, ...] | None = None
    """The answer's token logprobs, when they were asked for: the answering specialist's, or
    the lead's for the text it answered with (``()`` for a turn of tool calls alone). Not kept
    in transcripts: a replayed run has none."""
    app_tool_calls: tuple[FunctionCall, ...] = ()
    """The lead's calls of the caller's own tools (``finish_reason`` ``tool_calls``), for the
    caller to run, under ids of ours; the caller's next request answers them and continues
    the run (:mod:`orchestrator.handover`)."""
    continues_run_id: str | None = None
    """The earlier run this one continues: the request answered that run's
    ``app_tool_calls``. Runs linked this way are one tool conversation, turn by turn."""
    difficulty: DifficultyDecision | None = None
    """Cascade's difficulty skip, when the run had a target share of lead calls: the score,
    the threshold the target mapped to, and whether the specialist was skipped (schema
    0018)."""

    @property
    def error(self) -> str | None:
        """The failure's message, for people."""
        return self.failure.message if self.failure else None

    @property
    def lead_tokens(self) -> int:
        return self.lead_input_tokens + self.lead_output_tokens

    @property
    def slm_tokens(self) -> int:
        return self.slm_prompt_tokens + self.slm_completion_tokens

    @property
    def saved_usd(self) -> float:
        return max(0.0, self.lead_only_cost_usd - self.cost_usd)

    @classmethod
    def derive(cls, result: RunResult, **more: Any) -> Self:
        """``result`` as an instance of ``cls``, a subclass that adds the fields in ``more``.

        The result's own fields are taken whole, by the base class's definition: a subclass
        never restates them, so nothing can be copied under the wrong name or forgotten.
        """
        own = {f.name: getattr(result, f.name) for f in dataclasses.fields(RunResult)}
        return cls(**own, **more)

    def as_dict(self) -> dict[str, Any]:
        """The result's fields and figures as JSON-able values (``ask --json``)."""
        own = {f.name: getattr(self, f.name) for f in dataclasses.fields(RunResult)}
        return {
            **own,
            "failure": dataclasses.asdict(self.failure) if self.failure else None,
            "logprobs": [dataclasses.asdict(t) for t in self.logprobs] if self.logprobs else None,
            "error": self.error,
            "lead_tokens": self.lead_tokens,
            "slm_tokens": self.slm_tokens,
            "saved_usd": self.saved_usd,
        }
