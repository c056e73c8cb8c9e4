"""Run a suite's samples through the orchestrator in several modes: same samples, resumable.

The comparison is only fair when every mode answers the same requests, so the samples are chosen
once (a seeded shuffle of the whole split, then the first ``limit``; a larger limit extends the
same list) and each is run in every mode. Items run concurrently; each clean result goes to the
output directory's cache the moment it is scored, so an interrupted evaluation resumes where it
stopped and a repeated one costs nothing (see :mod:`evals.cache`).

Each run's transcript is read back from the orchestrator's store for what the result alone does
not say: how many tools were called, and the cascade's first specialist answer (its *draft*),
which is scored too so that the cascade's threshold curve can be computed offline.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from evals.cache import CACHE_FILE, ResultCache, config_fingerprint, mode_hashes
from evals.data import DataSource
from evals.errors import JudgeError
from evals.judge import Judge
from evals.records import Draft, ItemResult
from evals.samples import Prediction, Sample, Score
from evals.suites import Suite
from orchestrator.cost import Price
from orchestrator.lead import LeadConfig, require_lead
from orchestrator.modes import Mode
from orchestrator.outcome import Failure, FailureKind, RunResult
from orchestrator.request import InvalidRequest
from orchestrator.run import Orchestrator
from orchestrator.transcripts import RunRecord, TranscriptStore
from specialists.backend import ChatMessage
from specialists.errors import ConfigurationError

ALL_MODES: tuple[Mode, ...] = (Mode.llm, Mode.router, Mode.cascade, Mode.slm)
"""Report order: the baseline first, the lead-free mode last."""

MAX_CONCURRENCY = 64

OnItem = Callable[[ItemResult, bool], None]
"""Called as each item completes, with whether it came from the cache (progress bars)."""


@dataclass(frozen=True, slots=True)
class EvalPlan:
    """What to evaluate."""

    suite: str
    modes: tuple[Mode, ...] = ALL_MODES
    limit: int | None = None
    """Samples to take from the split; ``None``: all of them."""
    seed: int = 0
    """Picks the samples and seeds the bootstrap intervals."""
    concurrency: int = 4
    """Items in flight at once (across modes)."""

    def __post_init__(self) -> None:
        if not self.modes:
            raise ConfigurationError("no modes to evaluate; choose from llm, router, cascade, slm")
        if len(set(self.modes)) != len(self.modes):
            raise ConfigurationError(f"a mode is listed twice: {', '.join(self.modes)}")
        if self.limit is not None and self.limit < 1:
            raise ConfigurationError(f"limit must be at least 1, got {self.limit}")
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise ConfigurationError(
                f"concurrency must be between 1 and {MAX_CONCURRENCY}, got {self.concurrency}"
            )


@dataclass(frozen=True)
class EvalOutcome:
    """Everything a report is made of."""

    plan: EvalPlan
    samples: list[Sample]
    fingerprint: dict[str, Any]
    config_hashes: dict[str, str]
    """By mode: the hash of the fingerprint sections that mode depends on."""
    items: dict[str, list[ItemResult]]
    """By mode (in plan order), each in sample order."""
    ran: int
    """Items run now."""
    reused: int
    """Items taken from the cache."""
    lead_model: str | None = None
    """The lead's name, for the report's headline."""
    lead_price: Price | None = None
    """What the lead's tokens cost; ``None``: unpriced (counted as $0)."""
    slm_price_per_million: float = 0.0


def select_samples(
    suite: Suite, source: DataSource, *, limit: int | None, seed: int
) -> list[Sample]:
    """The first ``limit`` samples of a seeded shuffle of the suite's whole split.

    Raises:
        ConfigurationError: the split is empty or two samples share an id (the cache and the
            cross-mode comparison both rely on ids being unique).
    """
    population = list(suite.load(source))
    if not population:
        raise ConfigurationError(f"suite {suite.name!r} has no samples in {source}")
    ids = [sample.id for sample in population]
    if len(set(ids)) != len(ids):
        duplicate = next(i for i, count in Counter(ids).items() if count > 1)
        raise ConfigurationError(f"suite {suite.name!r} has two samples with id {duplicate!r}")
    order = list(range(len(population)))
    random.Random(seed).shuffle(order)
    return [population[i] for i in order[:limit]]


def check_ready(plan: EvalPlan, suite: Suite, *, lead: LeadConfig | None, has_judge: bool) -> None:
    """Fail before anything is loaded or run when a mode or the suite lacks what it needs.

    Raises:
        ConfigurationError: a mode other than ``slm`` needs a lead, and none is configured.
        JudgeError: the suite is scored by a judge, and none is configured.
    """
    for mode in plan.modes:
        if mode is not Mode.slm:
            require_lead(lead, mode.value)
    if suite.needs_judge and not has_judge:
        raise JudgeError(
            f"suite {suite.name!r} is scored by a judge model, and none is configured; set "
            "UNDERSTUDY_EVAL_JUDGE_MODEL (and UNDERSTUDY_EVAL_JUDGE_BASE_URL for a local server)"
        )


async def evaluate(
    orchestrator: Orchestrator,
    suite: Suite,
    samples: Sequence[Sample],
    plan: EvalPlan,
    out_dir: Path,
    *,
    slm_base: str,
    judge: Judge | None = None,
    judge_model: str | None = None,
    on_item: OnItem | None = None,
) -> EvalOutcome:
    """Answer and score every sample in every mode of ``plan``, reusing cached results.

    Args:
        orchestrator: Must have a transcript store (tool calls and drafts are read from it);
            give it one of its own so that evaluation runs do not mix with production traffic.
        slm_base: Names the specialists' base model in the configuration hash.
        judge: Required when the suite needs one; ``judge_model`` names it in the hash.

    Raises:
        ConfigurationError: see :func:`check_ready`; or the orchestrator records no
            transcripts.
        JudgeError: see :func:`check_ready`.
    """
    check_ready(plan, suite, lead=orchestrator.lead, has_judge=judge is not None)
    if orchestrator.store is None:
        raise ConfigurationError("the harness reads each run's transcript: give it a store")
    fingerprint = config_fingerprint(
        orchestrator, slm_base=slm_base, judge_model=judge_model if judge else None
    )
    hashes = {mode: h for mode, h in mode_hashes(fingerprint).items() if mode in plan.modes}
    runner = _ItemRunner(orchestrator, orchestrator.store, suite, judge, hashes)
    with ResultCache(out_dir / CACHE_FILE) as cache:
        items = await runner.run_all(samples, plan, cache, on_item)
    lead = orchestrator.lead
    return EvalOutcome(
        plan=plan,
        samples=list(samples),
        fingerprint=fingerprint,
        config_hashes={mode.value: h for mode, h in hashes.items()},
        items=items,
        ran=runner.ran,
        reused=runner.reused,
        lead_model=lead.display_name if lead else None,
        lead_price=orchestrator.prices.lead_price(lead.display_name if lead else None),
        slm_price_per_million=orchestrator.prices.slm_per_million,
    )


class _ItemRunner:
    """Runs, scores and caches (sample, mode) items under one configuration."""

    def __init__(
        self,
        orchestrator: Orchestrator,
        store: TranscriptStore,
        suite: Suite,
        judge: Judge | None,
        config_hashes: dict[Mode, str],
    ) -> None:
        self.orchestrator = orchestrator
        self.store = store
        self.suite = suite
        self.judge = judge
        self.config_hashes = config_hashes
        self.ran = 0
        self.reused = 0

    async def run_all(
        self,
        samples: Sequence[Sample],
        plan: EvalPlan,
        cache: ResultCache,
        on_item: OnItem | None,
    ) -> dict[str, list[ItemResult]]:
        slots = asyncio.Semaphore(plan.concurrency)
        results: dict[tuple[str, Mode], ItemResult] = {}

        async def one(sample: Sample, mode: Mode) -> None:
            cached = cache.get((self.suite.name, sample.id, mode.value, self.config_hashes[mode]))
            if cached is None:
                async with slots:
                    item = await self.run_one(sample, mode)
                cache.put(item)
                self.ran += 1
            else:
                item = cached
                self.reused += 1
            results[sample.id, mode] = item
            if on_item is not None:
                on_item(item, cached is not None)

        # Sample-major: every mode advances together, and a specialist's concurrent requests
        # from different modes share the backend's batches.
        async with asyncio.TaskGroup() as group:
            for sample in samples:
                for mode in plan.modes:
                    group.create_task(one(sample, mode))
        return {mode.value: [results[sample.id, mode] for sample in samples] for mode in plan.modes}

    async def run_one(self, sample: Sample, mode: Mode) -> ItemResult:
        try:
            result = await self.orchestrator.run(
                cast(list[ChatMessage], list(sample.messages)), mode
            )
        except InvalidRequest as exc:  # the orchestrator refuses this sample: a failed item
            return self._refused(sample, mode, str(exc))
        transcript = await self.store.get_run(result.run_id)
        score = await self._score(sample, result.answer, result)
        draft = (
            await self._draft(sample, result, transcript, score) if mode is Mode.cascade else None
        )
        return ItemResult.derive(
            result,
            suite=self.suite.name,
            sample_id=sample.id,
            config_hash=self.config_hashes[mode],
            slm_cost_usd=self._slm_cost(result),
            tool_calls=len(transcript.tool_calls),
            score=score.value,
            score_details=score.details,
            draft=draft,
        )

    async def _score(self, sample: Sample, answer: str | None, result: RunResult) -> Score:
        prediction = Prediction(
            answer=answer, route=result.route, specialists=tuple(result.specialists)
        )
        return await self.suite.score(sample, prediction, judge=self.judge)

    async def _draft(
        self, sample: Sample, result: RunResult, transcript: RunRecord, score: Score
    ) -> Draft | None:
        """The specialist's first answer in a cascade run, or ``None`` when none answered.

        The cascade's route names the specialist it asked first (``cascade:accepted:math``,
        ``cascade:escalated:math``; ``cascade:lead`` when none fitted, ``cascade:skipped:math``
        when the difficulty skip sent it to the lead), and its direct call is the transcript's
        first tool call.
        """
        parts = result.route.split(":")
        first = transcript.tool_calls[0] if transcript.tool_calls else None
        tried = len(parts) == 3 and parts[1] in ("accepted", "escalated")
        if not tried or first is None or first.confidence is None or first.error:
            return None
        name = parts[2]
        specialist = self.orchestrator.catalog.get(name)
        if result.escalated:
            score = await self._score(sample, first.output, result)
        return Draft(
            specialist=name,
            confidence=first.confidence,
            valid=specialist.validate(first.output).ok,
            score=score.value,
            cost_usd=self._slm_cost(result),
        )

    def _slm_cost(self, result: RunResult) -> float:
        return self.orchestrator.prices.slm_cost(result.slm_tokens)

    def _refused(self, sample: Sample, mode: Mode, reason: str) -> ItemResult:
        """A sample the orchestrator would not run: no answer, nothing spent, scored 0."""
        nothing_ran = RunResult(
            run_id="",
            mode=mode.value,
            answer=None,
            route="",
            specialists=[],
            escalated=False,
            degraded=False,
            confidence=None,
            lead_input_tokens=0,
            lead_output_tokens=0,
            slm_prompt_tokens=0,
            slm_completion_tokens=0,
            cost_usd=0.0,
            lead_only_cost_usd=0.0,
            latency_ms=0.0,
            failure=Failure(FailureKind.invalid_request, f"refused: {reason}"),
        )
        return ItemResult.derive(
            nothing_ran,
            suite=self.suite.name,
            sample_id=sample.id,
            config_hash=self.config_hashes[mode],
            slm_cost_usd=0.0,
            tool_calls=0,
            score=0.0,
        )
