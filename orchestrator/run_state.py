"""What a run accumulates while it works (:class:`RunState`), and what it becomes at the end:
its :class:`~orchestrator.outcome.RunResult` and the transcript's
:class:`~orchestrator.transcripts.RunRecord`, priced by the run's :class:`PriceBook`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from agents import Agent

from orchestrator.cost import PriceBook
from orchestrator.difficulty import DifficultyDecision
from orchestrator.modes import Mode
from orchestrator.options import CallOptions
from orchestrator.outcome import Failure, FailureKind, FinishReason, RunResult
from orchestrator.prerouter import PreRouter, RouteDecision
from orchestrator.transcripts import LeadCallRecord, RunRecord
from specialists.backend import ChatMessage, FunctionCall, Generation, TokenLogprob
from specialists.catalog import Catalog, Specialist
from specialists.validators import Validation
from tools.context import ToolDeps

OnDelta = Callable[[str], Awaitable[None]]
"""Receives answer text as it is produced (streaming)."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Lineup:
    """The specialists a run works with: the catalog, the pre-router built from it, and the lead's
    agents (one tool per specialist). Replaced whole by ``Orchestrator.replace_catalog``; each run
    keeps the lineup it started with, so a swap never changes specialists mid-run."""

    catalog: Catalog
    prerouter: PreRouter | None
    agents: tuple[Agent[ToolDeps], Agent[ToolDeps]] | None
    """The lead with tools (router) and without (llm); stateless, so built once per lineup."""


@dataclass
class RunState:
    """Everything a run accumulates before it becomes a result and a transcript."""

    run_id: str
    mode: Mode
    messages: list[ChatMessage]
    deadline: float
    lineup: Lineup
    answer: str | None = None
    route: str = ""
    escalated: bool = False
    degraded: bool = False
    confidence: float | None = None
    failure: Failure | None = None
    decision: RouteDecision | None = None
    difficulty: DifficultyDecision | None = None
    draft: Generation | None = None
    lead_calls: list[LeadCallRecord] = field(default_factory=list)
    on_delta: OnDelta | None = None
    """Where the lead's answer streams to as it is produced; ``None`` when the caller set a
    ``response_format``: the answer is then checked (:meth:`withhold_misformatted`) before any
    of it goes out, and handed over whole."""
    options: CallOptions = field(default_factory=CallOptions)
    """The caller's sampling (its cap on answer tokens included) and attribution."""
    streamed: bool = False
    """Whether answer text already went out through ``on_delta``."""
    finish_reason: FinishReason = "stop"
    """How the answer ended (``length``: a specialist's answer cut at its token limit)."""
    logprobs: tuple[TokenLogprob, ...] | None = None
    """The answer's token logprobs, when the caller asked for them."""
    app_tool_calls: tuple[FunctionCall, ...] = ()
    """The lead's calls of the caller's tools, which end the run (``finish_reason``
    ``tool_calls``), under our ids."""
    lead_turn: list[ChatMessage] = field(default_factory=list)
    """With ``app_tool_calls``: the run's turns as the lead made them, for the caller's next
    request to continue (:mod:`orchestrator.handover`)."""
    continues_run_id: str | None = None
    """The earlier run whose handed-over calls ``messages`` answers (its turn spliced in)."""
    owner: str | None = None
    """Who may continue this run's handed-over calls: the API key it answered, or nobody in
    particular (``None``: authentication off, the CLI)."""

    def answer_with(self, generation: Generation) -> None:
        """Answer with a specialist's ``generation``: its text, confidence and finish reason."""
        self.answer = generation.text
        self.confidence = generation.confidence.mean_prob
        self.finish_reason = "length" if is_truncated(generation) else "stop"
        if self.options.sampling.logprobs:
            self.logprobs = generation.logprobs

    def validate(self, specialist: Specialist, text: str) -> Validation:
        """``specialist``'s own validator on its answer, then the caller's ``response_format``."""
        verdict = specialist.validate(text)
        fmt = self.options.sampling.response_format
        return verdict if fmt is None or not verdict.ok else fmt.check(text)

    def withhold_misformatted(self) -> None:
        """Withhold an answer that is not the JSON the caller asked for (``response_format``):
        the run fails with :attr:`FailureKind.invalid_format`, saying why, rather than hand
        over text the caller's parser would reject. (A cascade's draft was checked before it
        was accepted; this catches the lead's answers and answers nothing else could replace.
        A turn that calls the caller's tools is not checked: OpenAI applies the format to the
        message that answers, after the tool results.)
        """
        fmt = self.options.sampling.response_format
        if fmt is None or self.answer is None or self.app_tool_calls:
            return  # an answer of tool calls is not text: the format binds the final answer
        verdict = fmt.check(self.answer)
        if verdict.ok:
            return
        who = "the specialist's" if self.degraded or self.mode is Mode.slm else "the lead's"
        message = f"{who} answer is not the requested response_format: {verdict.reason}"
        if self.failure is not None:  # a degraded answer: the lead's failure came first
            message = f"{self.failure.message}; and {message}"
        self.failure = Failure(FailureKind.invalid_format, message)
        self.answer = None
        self.logprobs = None

    def remaining_s(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


def is_truncated(generation: Generation) -> bool:
    """Whether ``generation`` was cut at its token limit rather than ending by itself."""
    return generation.finish_reason == "length"


def run_result(
    state: RunState, deps: ToolDeps, prices: PriceBook, lead_model: str | None, latency_ms: float
) -> RunResult:
    """The run's outcome: its answer, route, tokens and what they cost (on ``lead_model``)."""
    lead_in = sum(c.input_tokens for c in state.lead_calls)
    lead_out = sum(c.output_tokens for c in state.lead_calls)
    slm_in = sum(c.slm_prompt_tokens for c in deps.calls)
    slm_out = sum(c.slm_completion_tokens for c in deps.calls)
    cost = prices.lead_cost(lead_model, lead_in, lead_out) + prices.slm_cost(slm_in + slm_out)
    return RunResult(
        run_id=state.run_id,
        mode=state.mode.value,
        answer=state.answer,
        route=state.route,
        specialists=deps.specialists_used,
        escalated=state.escalated,
        degraded=state.degraded,
        confidence=state.confidence,
        lead_input_tokens=lead_in,
        lead_output_tokens=lead_out,
        slm_prompt_tokens=slm_in,
        slm_completion_tokens=slm_out,
        cost_usd=cost,
        lead_only_cost_usd=prices.lead_cost(lead_model, lead_in + slm_in, lead_out + slm_out),
        latency_ms=latency_ms,
        failure=state.failure,
        route_scores=dict(state.decision.scores) if state.decision else {},
        finish_reason=state.finish_reason,
        logprobs=state.logprobs,
        app_tool_calls=state.app_tool_calls,
        continues_run_id=state.continues_run_id,
        difficulty=state.difficulty,
    )


def run_record(
    state: RunState, deps: ToolDeps, result: RunResult, prices: PriceBook, lead_model: str | None
) -> RunRecord:
    """The transcript of the run: its result with the input, every lead call (each priced) and
    every tool call."""
    return RunRecord.derive(
        result,
        input_messages=[dict(m) for m in state.messages],
        lead_calls=[
            replace(
                call,
                model=call.model or (lead_model or ""),
                cost_usd=prices.lead_cost(lead_model, call.input_tokens, call.output_tokens),
            )
            for call in state.lead_calls
        ],
        tool_calls=list(deps.calls),
        lead_turn=list(state.lead_turn),
        owner_key_id=state.owner,
    )


class OutOfTime(Exception):
    """The run's time budget ran out outside a lead call; ends the run with ``failure``."""

    def __init__(self, failure: Failure) -> None:
        self.failure = failure
        super().__init__(failure.message)


async def in_budget(state: RunState, what: str, call: Callable[..., T], *args: Any) -> T:
    """``call(*args)`` on a worker thread, within the run's deadline.

    Raises:
        OutOfTime: the run's time budget ran out first (the message says ``what`` was done).
    """
    try:
        async with asyncio.timeout(state.remaining_s()):
            return await asyncio.to_thread(call, *args)
    except TimeoutError as exc:
        message = f"the run's time budget ran out while {what}"
        raise OutOfTime(Failure(FailureKind.run_timeout, message)) from exc
