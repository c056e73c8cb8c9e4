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

Around this module: what a run accepts (:mod:`orchestrator.request`), its budget
(:mod:`orchestrator.budget`), how the lead fails (:mod:`orchestrator.lead`), one turn with the
lead (:mod:`orchestrator.lead_call`), the caller's own tools, which send ``cascade`` to the
lead and end a lead loop that calls them (:mod:`orchestrator.app_tools`), what a run
accumulates and becomes (:mod:`orchestrator.run_state`), and the result it returns, with its
typed failure (:mod:`orchestrator.outcome`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence

from agents import Agent

from database import StoreError
from orchestrator.app_tools import check_mode, lead_only
from orchestrator.audits import AuditSampler, audit_candidate
from orchestrator.budget import RunBudget
from orchestrator.canary import CanaryTier, Lineups, check_tiers
from orchestrator.cost import PriceBook
from orchestrator.difficulty import skip_decision
from orchestrator.handover import Continuation, continue_history, echoed_call_ids
from orchestrator.lead import (
    LeadConfig,
    LeadFailed,
    build_lead_model,
    lead_model_settings,
    require_lead,
)
from orchestrator.lead_call import LeadCall
from orchestrator.lead_gate import GatedModel, LeadGate
from orchestrator.modes import Mode
from orchestrator.options import CallOptions, check_options
from orchestrator.outcome import Failure, FailureKind, RunResult
from orchestrator.prerouter import PreRouter, RouteDecision
from orchestrator.prompts import ESCALATION_NOTE, LEAD_INSTRUCTIONS, PLAIN_INSTRUCTIONS
from orchestrator.recorder import transcript_processor
from orchestrator.request import RequestLimits, UnsupportedParameter, admit, parse_mode
from orchestrator.run_state import (
    Lineup,
    OnDelta,
    OutOfTime,
    RunState,
    in_budget,
    is_truncated,
    run_record,
    run_result,
)
from orchestrator.stopping import Stopped, unless_stopped
from orchestrator.transcripts import (
    RunAlreadyRecorded,
    SpoolRefused,
    TranscriptLost,
    TranscriptSpool,
    TranscriptStore,
)
from specialists.backend import ChatMessage, Generation, SLMBackend
from specialists.catalog import Catalog, Specialist
from specialists.errors import (
    ConfigurationError,
    SpecialistPaused,
    SpecialistUnavailable,
    UnderstudyError,
)
from tools.context import ToolCall, ToolDeps
from tools.function_tools import build_tools, specialist_tool_name
from tools.sandbox import SandboxLimits

logger = logging.getLogger(__name__)


class Orchestrator:
    """Runs requests in any mode and records each run.

    Args:
        catalog: The specialists (and so the lead's specialist tools).
        backend: Where specialists run.
        prerouter: Picks a specialist by similarity; ``None`` requires an explicit specialist
            for ``slm`` and sends every ``cascade`` request to the lead.
        lead: The lead model; ``None`` or unconfigured leaves only ``slm`` mode working.
        store: Transcript store; ``None`` records nothing.
        spool: Where a run's record goes when ``store``'s database refuses it, to be written
            later (:class:`TranscriptSpool`); ``None``: such a run fails with
            :class:`TranscriptLost`.
        prices: Lead prices and the SLM price.
        budget: Each run's seconds, lead turns and lead tokens.
        limits: How large a request may be; every run is checked against them.
        lead_gate: Admits every lead call (provider rate limits for bulk work); ``None`` admits
            all.
        audits: Queues the audited share of answers no lead checked, once the run is
            recorded; ``None`` audits nothing.
        default_lead_share: Cascade's target share of lead calls for requests that set none
            (:mod:`orchestrator.difficulty`); ``None``: no difficulty skip unless asked.
    """

    def __init__(
        self,
        *,
        catalog: Catalog,
        backend: SLMBackend,
        prerouter: PreRouter | None = None,
        lead: LeadConfig | None = None,
        store: TranscriptStore | None = None,
        spool: TranscriptSpool | None = None,
        prices: PriceBook | None = None,
        budget: RunBudget | None = None,
        limits: RequestLimits | None = None,
        sandbox: SandboxLimits | None = None,
        lead_gate: LeadGate | None = None,
        audits: AuditSampler | None = None,
        default_lead_share: float | None = None,
    ) -> None:
        self.backend = backend
        self.default_lead_share = default_lead_share
        self.lead = lead if lead is not None and lead.configured else None
        self.store = store
        self.spool = spool
        self.prices = prices or PriceBook()
        self.budget = budget or RunBudget()
        self.limits = limits or RequestLimits()
        self.sandbox = sandbox or SandboxLimits()
        self.lead_gate = lead_gate
        self.audits = audits
        self._processor = transcript_processor()
        self._lineups = Lineups(self._new_lineup(catalog, prerouter))

    @property
    def catalog(self) -> Catalog:
        """The specialists new runs outside every canary use."""
        return self._lineups.main.catalog

    @property
    def prerouter(self) -> PreRouter | None:
        return self._lineups.main.prerouter

    @property
    def lineups(self) -> Lineups:
        """Every lineup served (canaries included) and the paused specialists."""
        return self._lineups

    def replace_catalog(
        self,
        catalog: Catalog,
        prerouter: PreRouter | None,
        *,
        canaries: Sequence[CanaryTier] = (),
        paused: frozenset[str] = frozenset(),
    ) -> None:
        """Serve ``catalog`` (routed by ``prerouter``, built from it) from the next run on, and
        each canary tier to its share of runs (:mod:`orchestrator.canary`); refuse ``paused``
        specialists by name.

        This is how a promoted, rolled-back, paused or canary specialist takes effect without a
        restart: its tool, its pre-router prototype and its adapter come with the new catalog.
        Runs in flight finish with the lineup they started with.

        Raises:
            ValueError: the tiers are out of order or a share is outside (0, 1).
        """
        check_tiers(canaries)
        tiers = tuple((t.share, self._new_lineup(t.catalog, t.prerouter)) for t in canaries)
        self._lineups = Lineups(self._new_lineup(catalog, prerouter), tiers, paused)

    def _new_lineup(self, catalog: Catalog, prerouter: PreRouter | None) -> Lineup:
        return Lineup(catalog, prerouter, self._build_agents(catalog) if self.lead else None)

    def _build_agents(self, catalog: Catalog) -> tuple[Agent[ToolDeps], Agent[ToolDeps]]:
        assert self.lead is not None
        model = build_lead_model(self.lead)
        if self.lead_gate is not None:
            model = GatedModel(model, self.lead_gate)
        settings = lead_model_settings(self.lead)
        with_tools = Agent[ToolDeps](
            name="understudy-lead",
            instructions=LEAD_INSTRUCTIONS,
            tools=build_tools(catalog, self.sandbox),
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
        options: CallOptions | None = None,
        stop: asyncio.Event | None = None,
        owner: str | None = None,
    ) -> RunResult:
        """Answer ``request`` (a prompt or a chat history ending with a user turn) in ``mode``.

        ``options`` go to each lead call whole, and their sampling to the specialist whose
        answer is the run's (``slm``, a cascade's draft, a degraded run's fallback) — not to the
        specialists the lead consults, whose answers are the lead's material, not the caller's.
        Its ``max_tokens`` caps the answer: the specialist's generation, or each lead call.
        The token logprobs it may ask for are those of whoever wrote the answer: the answering
        specialist (a degraded run's fallback included) or the lead.
        With ``on_delta``, the answer's text is also handed over as it is produced: the lead's
        final-answer tokens (only from the turn that answers, never from a turn that calls
        tools), or a specialist's answer in one piece once the run has ended and is recorded.
        A degraded answer is never handed over: the caller decides, from the result, whether
        to deliver it.

        ``stop``, once set, ends the run where it is (a server whose drain ran out): the work
        in progress is cancelled and the run ends with :attr:`FailureKind.shutdown`, recorded
        like any other run, instead of vanishing with a cancelled task.

        ``owner`` (the caller's API key id; ``None``: nobody in particular) is who may continue
        the run's calls of its own tools; a history answering calls an earlier run of the same
        owner handed over continues that run: its turn is spliced back in
        (:mod:`orchestrator.handover`) and the run records ``continues_run_id``.

        A run that ends without an answer, or answers from a fallback, says why in its
        ``failure``; the exceptions below are raised before anything runs, except
        :class:`RunAlreadyRecorded`.

        Raises:
            ConfigurationError: the mode needs a lead (or a specialist) that is not configured.
            InvalidRequest: the request is malformed; :class:`OverLimit` when it is over
                :attr:`limits`; :class:`UnsupportedParameter` when ``options`` ask for what
                ``mode`` cannot give.
            UnknownSpecialistError: ``specialist`` is not in the catalog;
                :class:`SpecialistPaused` when an operator paused it.
            StoreError: the history answers tool calls, and the runs that may have handed
                them over could not be looked up.
            RunAlreadyRecorded: ``run_id`` is already in the transcript store; the run was
                made but not recorded (nor is anything else changed).
            TranscriptLost: the run was made, but its record reached neither the database nor
                the spool: the run must not count as done.
        """
        mode = parse_mode(mode)
        options = options or CallOptions()
        messages = admit(request, self.limits, max_tokens=options.sampling.max_tokens)
        check_options(mode, options, self.backend)
        if mode is not Mode.slm:
            require_lead(self.lead, mode.value)
        run_id = run_id or uuid.uuid4().hex
        lineup = self._lineups.for_run(run_id)
        self._check_tools(mode, options, messages, lineup)
        if specialist in self._lineups.paused:
            raise SpecialistPaused(specialist)
        forced = lineup.catalog.get(specialist) if specialist else None
        continuation = await self._continuation(messages, owner)
        started = time.perf_counter()
        state = RunState(
            run_id=run_id,
            mode=mode,
            messages=continuation.messages,
            continues_run_id=continuation.continues_run_id,
            owner=owner,
            deadline=time.monotonic() + self.budget.max_seconds,
            lineup=lineup,
            on_delta=None if options.sampling.response_format else on_delta,
            options=options,
        )
        deps = ToolDeps(
            backend=self.backend,
            catalog=lineup.catalog,
            sandbox=self.sandbox,
            deadline=state.deadline,
        )
        try:
            await unless_stopped(self._answer(state, deps, forced), stop)
        except (LeadFailed, OutOfTime, Stopped) as exc:  # nothing to fall back to
            state.failure = exc.failure
        state.withhold_misformatted()
        latency_ms = (time.perf_counter() - started) * 1000
        result = run_result(state, deps, self.prices, self._lead_model, latency_ms)
        await self._record(state, deps, result)
        if self.audits is not None:
            candidate = audit_candidate(result, state.messages, deps.calls, lineup.catalog)
            if candidate is not None:
                await self.audits.consider(candidate)
        if on_delta is not None and state.answer and not (state.streamed or state.degraded):
            # Last, with nothing awaited after it: a stream that starts at this text finds
            # the run ended, so its headers carry the route and cost (serving.api.runs).
            await on_delta(state.answer)
        return result

    @staticmethod
    def _check_tools(
        mode: Mode, options: CallOptions, messages: list[ChatMessage], lineup: Lineup
    ) -> None:
        """Refuse the caller's tools (or tool turns) where they cannot be honoured: ``slm``
        has no lead to call them (:func:`check_mode`), and in ``router`` (and a cascade's lead)
        a caller's tool named like one of ours would be ambiguous.

        Raises:
            UnsupportedParameter: naming ``tools`` or ``messages``.
        """
        app = options.tools
        check_mode(mode, app, messages)
        if app is None or mode is Mode.llm or lineup.agents is None:
            return
        ours = {tool.name for tool in lineup.agents[0].tools}
        for name in app.names:
            if name in ours:
                raise UnsupportedParameter(
                    "tools",
                    f"the tool name {name!r} is one of Understudy's own tools in {mode.value} "
                    f"mode ({', '.join(sorted(ours))}); rename the app's tool",
                )

    async def _continuation(self, messages: list[ChatMessage], owner: str | None) -> Continuation:
        """``messages`` with the turns of the runs they continue spliced back in; the store is
        asked only when an assistant message carries tool calls.

        Raises:
            UnsupportedParameter: naming ``messages`` (:func:`continue_history`).
            StoreError: The lookup failed.
        """
        call_ids = echoed_call_ids(messages)
        if self.store is None or not call_ids:
            return Continuation(messages, None)
        return continue_history(messages, await self.store.handovers(call_ids, owner))

    # ------------------------------------------------------------------------------ modes

    async def _answer(self, state: RunState, deps: ToolDeps, forced: Specialist | None) -> None:
        if state.mode is Mode.llm:
            state.route = "lead"
            await self._ask_lead(state, deps, state.messages, with_tools=False)
        elif state.mode is Mode.router:
            state.route = "router"
            await self._router(state, deps, state.messages)
        elif state.mode is Mode.slm:
            await self._slm(state, deps, forced)
        else:
            await self._cascade(state, deps, forced)

    async def _slm(self, state: RunState, deps: ToolDeps, forced: Specialist | None) -> None:
        catalog = state.lineup.catalog
        if forced is None:
            decision = await self._route(state, required=True)
            assert decision is not None  # required: a missing pre-router raised
            forced = catalog.get(decision.best)
        specialist = forced
        state.route = f"slm:{specialist.name}"
        generation = await self._specialist(state, deps, specialist)
        if generation is not None:
            state.answer_with(generation)

    async def _cascade(self, state: RunState, deps: ToolDeps, forced: Specialist | None) -> None:
        if lead_only(state.options.tools, state.messages):
            state.route = "cascade:lead"
            await self._router(state, deps, state.messages)
            return
        if forced is None:
            decision = await self._route(state, required=False)
            if decision is None or decision.specialist is None:
                state.route = "cascade:lead"
                await self._router(state, deps, state.messages)
                return
            forced = state.lineup.catalog.get(decision.specialist)
            if await self._skips(state, decision):
                state.route = f"cascade:skipped:{decision.specialist}"
                await self._router(state, deps, state.messages)
                return
        specialist = forced
        generation = await self._specialist(state, deps, specialist)
        if generation is not None:
            verdict = state.validate(specialist, generation.text)
            confident = generation.confidence.mean_prob >= specialist.confidence_threshold
            if confident and verdict.ok and not is_truncated(generation):
                state.route = f"cascade:accepted:{specialist.name}"
                state.answer_with(generation)
                return
            if is_truncated(generation):
                reason = "the draft was cut off at its token limit (finish_reason 'length')"
            elif not verdict.ok:
                reason = f"format check failed: {verdict.reason}"
            else:
                reason = (
                    f"confidence {generation.confidence.mean_prob:.2f} is below "
                    f"{specialist.confidence_threshold:.2f}"
                )
            note = ESCALATION_NOTE.format(
                specialist=specialist.name, reason=reason, draft=generation.text
            )
            messages: list[ChatMessage] = [*state.messages, {"role": "system", "content": note}]
        else:
            messages = state.messages
        state.route = f"cascade:escalated:{specialist.name}"
        state.escalated = True
        await self._router(state, deps, messages)

    async def _skips(self, state: RunState, decision: RouteDecision) -> bool:
        """Whether the difficulty skip sends this prompt straight to the lead; records the
        decision when the run has a target share of lead calls. The prompt is scored only
        then (within the run's deadline), so runs without a target pay nothing for it.

        Raises:
            OutOfTime: the run's time budget ran out first.
        """
        target = state.options.lead_share
        target = self.default_lead_share if target is None else target
        prerouter = state.lineup.prerouter
        if target is None or prerouter is None:
            return False
        prompt = state.messages[-1]["content"]
        score = await in_budget(
            state,
            "the difficulty skip scored the prompt",
            prerouter.difficulty_of,
            prompt,
            decision,
        )
        state.difficulty = skip_decision(
            prerouter.difficulty, score, decision.best, target, version=prerouter.version
        )
        return state.difficulty.skipped

    async def _router(self, state: RunState, deps: ToolDeps, messages: list[ChatMessage]) -> None:
        try:
            await self._ask_lead(state, deps, messages, with_tools=True)
        except LeadFailed as exc:
            await self._degrade(state, deps, exc.failure)
        else:
            used = [c for c in deps.calls if c.specialist and c.confidence is not None]
            if used:
                state.confidence = min(c.confidence for c in used if c.confidence is not None)

    async def _degrade(self, state: RunState, deps: ToolDeps, cause: Failure) -> None:
        """The lead failed: answer with the best specialist answer we have or can get; the
        run's failure is the lead's, whether or not a specialist answered."""
        state.degraded = True
        if lead_only(state.options.tools, state.messages):
            message = f"{cause.message}; and only the lead can use the app's tools"
            state.failure = Failure(cause.kind, message)
            return
        generation = state.draft
        if generation is None:
            try:
                decision = await self._route(state, required=False)
            except OutOfTime:
                decision = None
            if decision is not None:
                specialist = state.lineup.catalog.get(decision.best)
                generation = await self._specialist(state, deps, specialist)
        if generation is None:
            message = f"{cause.message}; and no specialist answer is available"
            state.failure = Failure(cause.kind, message)
            return
        state.answer_with(generation)
        state.failure = Failure(cause.kind, f"degraded: {cause.message}")

    # ------------------------------------------------------------------------ components

    async def _route(self, state: RunState, *, required: bool) -> RouteDecision | None:
        """The pre-router's decision (made once per run, within the run's deadline).

        Raises:
            ConfigurationError: ``required`` and there is no pre-router.
            OutOfTime: the run's time budget ran out first.
        """
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
        state.decision = await in_budget(
            state, "the pre-router chose a specialist", prerouter.route, prompt
        )
        return state.decision

    async def _specialist(
        self, state: RunState, deps: ToolDeps, specialist: Specialist
    ) -> Generation | None:
        """Ask a specialist directly, within the run's deadline, logging it like a tool call;
        ``None`` if it failed (any failure of its backend, a model that cannot load included)."""
        started = time.perf_counter()
        request = state.messages[-1]["content"]
        call = ToolCall(
            name=specialist_tool_name(specialist),
            input={"request": request},
            output="",
            latency_ms=0.0,
            specialist=specialist.name,
        )
        failure: Failure | None = None
        generation: Generation | None = None
        budget = asyncio.timeout(state.remaining_s())
        try:
            async with budget:
                produced = await self.backend.generate(
                    specialist,
                    state.messages,
                    sampling=state.options.sampling.restricted_to(self.backend.sampling_fields),
                )
        except Exception as exc:  # any failure of the backend, a bug in it included, degrades
            if budget.expired():
                call.error = f"the run's time budget ran out while {specialist.name} answered"
                kind = FailureKind.run_timeout
            elif isinstance(exc, UnderstudyError | TimeoutError):
                call.error = str(exc) or type(exc).__name__
                unavailable = isinstance(exc, SpecialistUnavailable | TimeoutError)
                kind = (
                    FailureKind.specialist_unavailable
                    if unavailable
                    else FailureKind.specialist_failed
                )
            else:  # a failure no backend promises (a bug): the operator needs its traceback
                logger.exception("specialist %s failed unexpectedly", specialist.name)
                call.error = f"{type(exc).__name__}: {exc}"
                kind = FailureKind.specialist_failed
            failure = Failure(kind, call.error)
        else:
            generation = produced
            call.output = generation.text
            call.confidence = generation.confidence.mean_prob
            call.slm_prompt_tokens = generation.usage.prompt_tokens
            call.slm_completion_tokens = generation.usage.completion_tokens
            state.draft = generation
        call.latency_ms = (time.perf_counter() - started) * 1000
        deps.calls.append(call)
        if failure is not None and state.mode is Mode.slm:  # no fallback: the run failed
            state.failure = failure
        return generation

    async def _ask_lead(
        self, state: RunState, deps: ToolDeps, messages: list[ChatMessage], *, with_tools: bool
    ) -> None:
        agents = state.lineup.agents
        assert self.lead is not None and agents is not None
        call = LeadCall(self.budget, self.lead.display_name, self._processor)
        agent = agents[0] if with_tools else agents[1]
        await call.ask(state, deps, agent, messages, with_tools=with_tools)

    # ------------------------------------------------------------------- results & records

    async def _record(self, state: RunState, deps: ToolDeps, result: RunResult) -> None:
        """Keep the run's transcript: in the store, or, while its database refuses writes, in
        the spool (written to the store later).

        Raises:
            RunAlreadyRecorded: The caller's ``run_id`` is taken; this run was not recorded.
                An exactly-once caller (the batch runner) replays the recorded run instead of
                answering twice.
            TranscriptLost: Neither the database nor the spool took the record.
        """
        if self.store is None:
            return
        record = run_record(state, deps, result, self.prices, self._lead_model)
        try:
            await self.store.save_run(record)
        except RunAlreadyRecorded:
            raise
        except StoreError as exc:
            if self.spool is None:
                raise TranscriptLost(record.run_id, exc, "no spool is configured") from exc
            try:
                await self.spool.put(record)
            except SpoolRefused as refused:
                raise TranscriptLost(record.run_id, exc, str(refused)) from refused
            logger.warning("database refused run %s (%s); spooled it", record.run_id, exc)

    @property
    def _lead_model(self) -> str | None:
        """The lead's name, as prices know it."""
        return self.lead.display_name if self.lead else None
