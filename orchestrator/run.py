"""``Orchestrator.run(request, mode)``: the one entry point every surface calls.

Four modes (see ARCHITECTURE.md):

- ``llm``: the lead alone — the baseline.
- ``slm``: the pre-router's specialist alone — no lead at all.
- ``router``: the lead with the specialists and exact tools; it delegates and verifies.
- ``cascade``: the specialist first; its answer is accepted when its confidence reaches the
  specialist's threshold *and* its validator passes, else the lead gets the request with the
  draft (``router`` path). No specialist fits → straight to the lead.

Dependencies never fail a run: a dead SLM becomes tool output the lead reacts to; a dead lead
(after its retries) makes router and cascade fall back to the best specialist answer, flagged
``degraded``. Every run has a budget (seconds, lead turns, lead tokens) and leaves a transcript.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import httpx
import openai
from agents import Agent, ModelSettings, RunConfig, RunContextWrapper, RunHooks, Runner
from agents.exceptions import MaxTurnsExceeded, ModelBehaviorError
from openai.types.responses import ResponseTextDeltaEvent

from database import StoreError
from orchestrator.cost import PriceBook
from orchestrator.lead import (
    LeadConfig,
    LeadUnavailable,
    build_lead_model,
    lead_model_settings,
    require_lead,
)
from orchestrator.lead_gate import GatedModel, LeadGate
from orchestrator.modes import Mode
from orchestrator.prerouter import PreRouter, RouteDecision
from orchestrator.prompts import ESCALATION_NOTE, LEAD_INSTRUCTIONS, PLAIN_INSTRUCTIONS
from orchestrator.recorder import transcript_processor
from orchestrator.transcripts import LeadCallRecord, RunRecord, ToolCallRecord, TranscriptStore
from specialists.backend import ChatMessage, Generation, SLMBackend
from specialists.catalog import Catalog, Specialist
from specialists.errors import ConfigurationError, SpecialistError, UnderstudyError
from tools.context import ToolCall, ToolDeps
from tools.function_tools import build_tools, specialist_tool_name
from tools.sandbox import SandboxLimits

logger = logging.getLogger(__name__)

MAX_MESSAGES = 200
MAX_MESSAGE_CHARS = 100_000


class InvalidRequest(UnderstudyError):
    """The request itself is malformed (empty, wrong roles, too large)."""


@dataclass(frozen=True, slots=True)
class RunBudget:
    """Limits of one run."""

    max_seconds: float = 120.0
    max_lead_turns: int = 8
    max_lead_tokens: int = 60_000


@dataclass(frozen=True, slots=True)
class RunResult:
    """What a run answered, how, and at what cost."""

    run_id: str
    mode: str
    answer: str | None
    route: str
    specialists: list[str]
    escalated: bool
    degraded: bool
    confidence: float | None
    lead_input_tokens: int
    lead_output_tokens: int
    slm_prompt_tokens: int
    slm_completion_tokens: int
    cost_usd: float
    lead_only_cost_usd: float
    """What the same tokens would have cost on the lead alone."""
    latency_ms: float
    error: str | None = None
    route_scores: dict[str, float] = field(default_factory=dict)

    @property
    def lead_tokens(self) -> int:
        return self.lead_input_tokens + self.lead_output_tokens

    @property
    def slm_tokens(self) -> int:
        return self.slm_prompt_tokens + self.slm_completion_tokens

    @property
    def saved_usd(self) -> float:
        return max(0.0, self.lead_only_cost_usd - self.cost_usd)

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "lead_tokens": self.lead_tokens,
            "slm_tokens": self.slm_tokens,
            "saved_usd": self.saved_usd,
        }


@dataclass(frozen=True, slots=True)
class _Lineup:
    """The specialists a run works with: the catalog, the pre-router built from it, and the lead's
    agents (one tool per specialist). Replaced whole by :meth:`Orchestrator.replace_catalog`;
    each run keeps the lineup it started with, so a swap never changes specialists mid-run."""

    catalog: Catalog
    prerouter: PreRouter | None
    agents: tuple[Agent[ToolDeps], Agent[ToolDeps]] | None
    """The lead with tools (router) and without (llm); stateless, so built once per lineup."""


@dataclass
class _RunState:
    """Everything a run accumulates before it becomes a result and a transcript."""

    run_id: str
    mode: Mode
    messages: list[ChatMessage]
    deadline: float
    lineup: _Lineup
    answer: str | None = None
    route: str = ""
    escalated: bool = False
    degraded: bool = False
    confidence: float | None = None
    error: str | None = None
    decision: RouteDecision | None = None
    draft: Generation | None = None
    lead_calls: list[LeadCallRecord] = field(default_factory=list)
    on_delta: OnDelta | None = None
    max_tokens: int | None = None
    """The caller's cap on answer tokens, if any."""
    streamed: bool = False
    """Whether answer text already went out through ``on_delta``."""

    def remaining_s(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


OnDelta = Callable[[str], Awaitable[None]]
"""Receives answer text as it is produced (streaming)."""


class _TokenBudgetExceeded(Exception):
    pass


class _TokenBudget(RunHooks[ToolDeps]):
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
            raise _TokenBudgetExceeded(f"lead used {self.spent} tokens; the budget is {self.limit}")


_LEAD_FAILURES = (
    openai.APIError,
    httpx.HTTPError,
    MaxTurnsExceeded,
    ModelBehaviorError,
    TimeoutError,
    _TokenBudgetExceeded,
)


class Orchestrator:
    """Runs requests in any mode and records each run.

    Args:
        catalog: The specialists (and so the lead's specialist tools).
        backend: Where specialists run.
        prerouter: Picks a specialist by similarity; ``None`` requires an explicit specialist
            for ``slm`` and sends every ``cascade`` request to the lead.
        lead: The lead model; ``None`` or unconfigured leaves only ``slm`` mode working.
        store: Transcript store; ``None`` records nothing.
        prices: Lead prices and the SLM price.
        lead_gate: Admits every lead call (provider rate limits for bulk work); ``None`` admits
            all.
    """

    def __init__(
        self,
        *,
        catalog: Catalog,
        backend: SLMBackend,
        prerouter: PreRouter | None = None,
        lead: LeadConfig | None = None,
        store: TranscriptStore | None = None,
        prices: PriceBook | None = None,
        budget: RunBudget | None = None,
        sandbox: SandboxLimits | None = None,
        lead_gate: LeadGate | None = None,
    ) -> None:
        self.backend = backend
        self.lead = lead if lead is not None and lead.configured else None
        self.store = store
        self.prices = prices or PriceBook()
        self.budget = budget or RunBudget()
        self.sandbox = sandbox or SandboxLimits()
        self.lead_gate = lead_gate
        self._processor = transcript_processor()
        self._lineup = self._new_lineup(catalog, prerouter)

    @property
    def catalog(self) -> Catalog:
        """The specialists new runs use."""
        return self._lineup.catalog

    @property
    def prerouter(self) -> PreRouter | None:
        return self._lineup.prerouter

    def replace_catalog(self, catalog: Catalog, prerouter: PreRouter | None) -> None:
        """Serve ``catalog`` (routed by ``prerouter``, built from it) from the next run on.

        This is how a promoted or rolled-back specialist takes effect without a restart: its
        tool, its pre-router prototype and its adapter come with the new catalog. Runs in flight
        finish with the lineup they started with.
        """
        self._lineup = self._new_lineup(catalog, prerouter)

    def _new_lineup(self, catalog: Catalog, prerouter: PreRouter | None) -> _Lineup:
        return _Lineup(catalog, prerouter, self._build_agents(catalog) if self.lead else None)

    def _build_agents(self, catalog: Catalog) -> tuple[Agent[ToolDeps], Agent[ToolDeps]]:
        assert self.lead is not None
        model = build_lead_model(self.lead)
        if self.lead_gate is not None:
            model = GatedModel(model, self.lead_gate)
        settings = lead_model_settings(self.lead)
        with_tools = Agent[ToolDeps](
            name="understudy-lead",
            instructions=LEAD_INSTRUCTIONS,
            tools=build_tools(catalog),
            model=model,
            model_settings=settings,
        )
        alone = Agent[ToolDeps](
            name="understudy-lead",
            instructions=PLAIN_INSTRUCTIONS,
            model=model,
            model_settings=settings,
        )
        return with_tools, alone

    async def run(
        self,
        request: str | Sequence[ChatMessage],
        mode: Mode | str,
        *,
        specialist: str | None = None,
        run_id: str | None = None,
        on_delta: OnDelta | None = None,
        max_tokens: int | None = None,
    ) -> RunResult:
        """Answer ``request`` (a prompt or a chat history ending with a user turn) in ``mode``.

        ``max_tokens`` caps the answer: the specialist's generation, or each lead call.
        With ``on_delta``, the answer's text is also handed over as it is produced: the lead's
        final-answer tokens as they stream, or a specialist's answer in one piece once accepted.

        Raises:
            ConfigurationError: the mode needs a lead (or a specialist) that is not configured.
            InvalidRequest: the request is malformed.
            UnknownSpecialistError: ``specialist`` is not in the catalog.
        """
        mode = _parse_mode(mode)
        messages = _normalise(request)
        if mode is not Mode.slm:
            require_lead(self.lead, mode.value)
        lineup = self._lineup
        forced = lineup.catalog.get(specialist) if specialist else None
        started = time.perf_counter()
        state = _RunState(
            run_id=run_id or uuid.uuid4().hex,
            mode=mode,
            messages=messages,
            deadline=time.monotonic() + self.budget.max_seconds,
            lineup=lineup,
            on_delta=on_delta,
            max_tokens=max_tokens,
        )
        deps = ToolDeps(backend=self.backend, catalog=lineup.catalog, sandbox=self.sandbox)
        try:
            if mode is Mode.llm:
                state.route = "lead"
                state.answer = await self._ask_lead(state, deps, messages, with_tools=False)
            elif mode is Mode.router:
                state.route = "router"
                await self._router(state, deps, messages)
            elif mode is Mode.slm:
                await self._slm(state, deps, forced)
            else:
                await self._cascade(state, deps, forced)
        except LeadUnavailable as exc:  # llm mode: nothing to fall back to
            state.error = str(exc)
        if on_delta is not None and state.answer and not state.streamed:
            await on_delta(state.answer)
        result = self._result(state, deps, (time.perf_counter() - started) * 1000)
        await self._record(state, deps, result)
        return result

    # ------------------------------------------------------------------------------ modes

    async def _slm(self, state: _RunState, deps: ToolDeps, forced: Specialist | None) -> None:
        catalog = state.lineup.catalog
        specialist = forced or catalog.get((await self._route(state, required=True)).best)
        state.route = f"slm:{specialist.name}"
        generation = await self._specialist(state, deps, specialist)
        if generation is None:
            return
        state.answer = generation.text
        state.confidence = generation.confidence.mean_prob

    async def _cascade(self, state: _RunState, deps: ToolDeps, forced: Specialist | None) -> None:
        if forced is None:
            decision = await self._route(state, required=False)
            if decision is None or decision.specialist is None:
                state.route = "cascade:lead"
                await self._router(state, deps, state.messages)
                return
            forced = state.lineup.catalog.get(decision.specialist)
        specialist = forced
        generation = await self._specialist(state, deps, specialist)
        if generation is not None:
            verdict = specialist.validate(generation.text)
            confident = generation.confidence.mean_prob >= specialist.confidence_threshold
            if confident and verdict.ok:
                state.route = f"cascade:accepted:{specialist.name}"
                state.answer = generation.text
                state.confidence = generation.confidence.mean_prob
                return
            reason = (
                f"format check failed: {verdict.reason}"
                if not verdict.ok
                else f"confidence {generation.confidence.mean_prob:.2f} is below "
                f"{specialist.confidence_threshold:.2f}"
            )
            note = ESCALATION_NOTE.format(
                specialist=specialist.name, reason=reason, draft=generation.text
            )
            messages = [*state.messages, {"role": "system", "content": note}]
        else:
            messages = state.messages
        state.route = f"cascade:escalated:{specialist.name}"
        state.escalated = True
        await self._router(state, deps, messages)

    async def _router(self, state: _RunState, deps: ToolDeps, messages: list[ChatMessage]) -> None:
        try:
            state.answer = await self._ask_lead(state, deps, messages, with_tools=True)
        except LeadUnavailable as exc:
            await self._degrade(state, deps, exc)
        else:
            used = [c for c in deps.calls if c.specialist and c.confidence is not None]
            if used:
                state.confidence = min(c.confidence for c in used if c.confidence is not None)

    async def _degrade(self, state: _RunState, deps: ToolDeps, cause: LeadUnavailable) -> None:
        """The lead failed: answer with the best specialist answer we have or can get."""
        state.degraded = True
        generation = state.draft
        if generation is None:
            decision = await self._route(state, required=False)
            if decision is not None:
                specialist = state.lineup.catalog.get(decision.best)
                generation = await self._specialist(state, deps, specialist)
        if generation is None:
            state.error = f"{cause}; and no specialist answer is available"
            return
        state.answer = generation.text
        state.confidence = generation.confidence.mean_prob
        state.error = f"degraded: {cause}"

    # ------------------------------------------------------------------------ components

    async def _route(self, state: _RunState, *, required: bool) -> RouteDecision | None:
        if state.decision is not None:
            return state.decision
        prerouter = state.lineup.prerouter
        if prerouter is None:
            if required:
                raise ConfigurationError(
                    "mode 'slm' needs a specialist: pass one (--specialist) or install the "
                    "pre-router's embedder (pip install 'understudy[local]')"
                )
            return None
        prompt = state.messages[-1]["content"]
        state.decision = await asyncio.to_thread(prerouter.route, prompt)
        return state.decision

    async def _specialist(
        self, state: _RunState, deps: ToolDeps, specialist: Specialist
    ) -> Generation | None:
        """Ask a specialist directly, logging it like a tool call; ``None`` if it failed."""
        started = time.perf_counter()
        request = state.messages[-1]["content"]
        call = ToolCall(
            name=specialist_tool_name(specialist),
            input={"request": request},
            output="",
            latency_ms=0.0,
            specialist=specialist.name,
        )
        try:
            generation = await self.backend.generate(
                specialist, state.messages, max_tokens=state.max_tokens
            )
        except SpecialistError as exc:
            call.error = str(exc)
            generation = None
        else:
            call.output = generation.text
            call.confidence = generation.confidence.mean_prob
            call.slm_prompt_tokens = generation.usage.prompt_tokens
            call.slm_completion_tokens = generation.usage.completion_tokens
            state.draft = generation
        call.latency_ms = (time.perf_counter() - started) * 1000
        deps.calls.append(call)
        if generation is None and state.mode is Mode.slm:
            state.error = call.error
        return generation

    async def _ask_lead(
        self, state: _RunState, deps: ToolDeps, messages: list[ChatMessage], *, with_tools: bool
    ) -> str:
        agents = state.lineup.agents
        assert self.lead is not None and agents is not None
        agent = agents[0] if with_tools else agents[1]
        trace_id = f"trace_{state.run_id}"
        hooks = _TokenBudget(self.budget.max_lead_tokens)
        config = RunConfig(
            trace_id=trace_id,
            workflow_name="understudy",
            trace_include_sensitive_data=True,
            model_settings=ModelSettings(max_tokens=state.max_tokens) if state.max_tokens else None,
        )
        arguments: dict[str, Any] = {
            "context": deps,
            "hooks": hooks,
            "max_turns": self.budget.max_lead_turns,
            "run_config": config,
        }
        with self._processor.capture(trace_id) as capture:
            try:
                async with asyncio.timeout(state.remaining_s()):
                    if state.on_delta is None:
                        result = await Runner.run(agent, list(messages), **arguments)
                    else:
                        result = Runner.run_streamed(agent, list(messages), **arguments)
                        async for event in result.stream_events():
                            if event.type == "raw_response_event" and isinstance(
                                event.data, ResponseTextDeltaEvent
                            ):
                                state.streamed = True
                                await state.on_delta(event.data.delta)
            except _LEAD_FAILURES as exc:
                raise LeadUnavailable(
                    f"lead {self.lead.display_name} failed: {_describe(exc)}"
                ) from exc
            finally:
                state.lead_calls.extend(capture.lead_calls)
        return str(result.final_output)

    # ------------------------------------------------------------------- results & records

    def _result(self, state: _RunState, deps: ToolDeps, latency_ms: float) -> RunResult:
        lead_in = sum(c.input_tokens for c in state.lead_calls)
        lead_out = sum(c.output_tokens for c in state.lead_calls)
        slm_in = sum(c.slm_prompt_tokens for c in deps.calls)
        slm_out = sum(c.slm_completion_tokens for c in deps.calls)
        model = self.lead.display_name if self.lead else None
        cost = self.prices.lead_cost(model, lead_in, lead_out) + self.prices.slm_cost(
            slm_in + slm_out
        )
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
            lead_only_cost_usd=self.prices.lead_cost(model, lead_in + slm_in, lead_out + slm_out),
            latency_ms=latency_ms,
            error=state.error,
            route_scores=dict(state.decision.scores) if state.decision else {},
        )

    async def _record(self, state: _RunState, deps: ToolDeps, result: RunResult) -> None:
        if self.store is None:
            return
        model = self.lead.display_name if self.lead else None
        summary = {name: getattr(result, name) for name in _RECORDED_RESULT_FIELDS}
        record = RunRecord(
            id=result.run_id,
            input_messages=[dict(m) for m in state.messages],
            **summary,
            lead_calls=[
                replace(
                    call,
                    model=call.model or (model or ""),
                    cost_usd=self.prices.lead_cost(model, call.input_tokens, call.output_tokens),
                )
                for call in state.lead_calls
            ],
            tool_calls=[
                ToolCallRecord(
                    name=c.name,
                    input=c.input,
                    output=c.output,
                    latency_ms=c.latency_ms,
                    confidence=c.confidence,
                    error=c.error,
                )
                for c in deps.calls
            ],
        )
        try:
            await self.store.save_run(record)
        except StoreError:  # the user still gets the answer; the operator gets the log line
            logger.exception("could not record run %s", result.run_id)


_RECORDED_RESULT_FIELDS = tuple(
    f.name for f in fields(RunRecord) if f.name in {g.name for g in fields(RunResult)}
)
"""The result's figures the transcript keeps as they are (mode, route, tokens, cost, …)."""


def _parse_mode(mode: Mode | str) -> Mode:
    try:
        return Mode(mode)
    except ValueError:
        raise InvalidRequest(
            f"unknown mode {mode!r}; modes: {', '.join(m.value for m in Mode)}"
        ) from None


def _normalise(request: str | Sequence[ChatMessage]) -> list[ChatMessage]:
    messages: list[ChatMessage] = (
        [{"role": "user", "content": request}] if isinstance(request, str) else list(request)
    )
    if not messages:
        raise InvalidRequest("the request has no messages")
    if len(messages) > MAX_MESSAGES:
        raise InvalidRequest(
            f"the request has {len(messages)} messages; the limit is {MAX_MESSAGES}"
        )
    for index, message in enumerate(messages):
        if message.get("role") not in ("system", "user", "assistant"):
            raise InvalidRequest(f"message {index} has role {message.get('role')!r}")
        content = message.get("content")
        if not isinstance(content, str):
            raise InvalidRequest(f"message {index} has no text content")
        if len(content) > MAX_MESSAGE_CHARS:
            raise InvalidRequest(f"message {index} is longer than {MAX_MESSAGE_CHARS} characters")
    if messages[-1]["role"] != "user" or not messages[-1]["content"].strip():
        raise InvalidRequest("the last message must be a non-empty user message")
    return messages


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "the run's time budget ran out"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__
