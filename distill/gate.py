"""The evaluation gate: a candidate adapter vs the current version vs the lead, on held-out data.

A distillation dataset's ``val`` and ``test`` splits hold requests the lead answered, with its
answers. The candidate and the specialist as it is served now (its active version, or the bare
base with its prompt for a new specialist) answer every one of them; each answer is scored
against the lead's with the evals scorers — numeric exact match for ``numeric_answer``
specialists, ROUGE-L F1 otherwise — and counts as *agreeing* when the score reaches
``match_threshold``.

The cascade accepts an answer when it is valid and its confidence reaches the specialist's
threshold. The threshold is calibrated on ``val``: the lowest confidence at which the accepted
answers agree with the lead at least ``target_precision`` of the time, over at least
``min_accepted`` answers. The gate then checks on ``test`` (data neither training nor
calibration saw) that:

1. a threshold was found on ``val``;
2. at that threshold the accepted test answers still reach the target, within
   ``precision_tolerance`` (small splits are noisy);
3. the candidate agrees with the lead at least as often as the current version does.

The figures (and the cost per request of the lead alone vs the cascade with the candidate) are
recorded in the version's row, and only a version that passed can be promoted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from distill.catalog import version_tag
from distill.config import GateConfig
from distill.promotion import ServedBase, register_candidate
from distill.registry import RegistryStore, SpecialistVersion
from orchestrator.transcripts import RunNotFound, TranscriptStore
from specialists.adapters import served_adapter_name
from specialists.backend import ChatMessage, SLMBackend
from specialists.catalog import Catalog, Specialist
from specialists.errors import DatasetError, SpecialistError
from specialists.validators import get_validator

logger = logging.getLogger(__name__)

MAX_CONCURRENCY = 16
"""Answers in flight at once (the local backend batches them)."""


@dataclass(frozen=True, slots=True)
class HeldOutItem:
    """One held-out request and the lead's answer to it."""

    messages: tuple[ChatMessage, ...]
    """The request as the specialist gets it (its system prompt is added when it answers)."""
    reference: str
    """The lead's answer."""
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one answer fared."""

    confidence: float
    valid: bool
    """The specialist's validator passed (the cascade's second condition)."""
    score: float
    """Agreement with the lead's answer, 0..1."""
    agrees: bool
    tokens: int


@dataclass(frozen=True, slots=True)
class Acceptance:
    """What the cascade would accept at a threshold."""

    threshold: float | None
    accepted: int
    coverage: float
    """Share of requests the specialist would keep from the lead."""
    precision: float | None
    """Share of accepted answers that agree with the lead (``None`` when none is accepted)."""


def read_split(dataset_dir: Path, split: str) -> list[HeldOutItem]:
    """The held-out items of ``split`` (``val`` or ``test``) of a distillation dataset.

    Raises:
        DatasetError: The file is missing or a line is not a chat example ending in an answer.
    """
    file = dataset_dir / f"{split}.jsonl"
    if not file.is_file():
        raise DatasetError(f"{file}: missing; is {dataset_dir} a distillation dataset?")
    items = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            messages = [m for m in record["messages"] if m["role"] != "system"]
            *request, answer = messages
            if answer["role"] != "assistant" or not request or request[-1]["role"] != "user":
                raise ValueError("expected user turns followed by one assistant answer")
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{file}:{number}: not a chat example ({exc})") from None
        items.append(
            HeldOutItem(
                messages=tuple({"role": m["role"], "content": m["content"]} for m in request),
                reference=str(answer["content"]),
                run_id=record.get("run_id"),
            )
        )
    return items


class AgreementScorer:
    """Scores an answer against the lead's with the evals scorer that fits the specialist."""

    def __init__(self, validator: str, match_threshold: float) -> None:
        self.name = "numeric_match" if validator == "numeric_answer" else "rouge_l"
        self.match_threshold = match_threshold

    def score(self, answer: str, reference: str) -> float:
        if self.name == "numeric_match":
            from evals.scorers.numeric import final_number

            expected, found = final_number(reference), final_number(answer)
            return float(expected is not None and found is not None and found[0] == expected[0])
        from evals.scorers.rouge import rouge_l

        return rouge_l(answer, [reference])

    def agrees(self, score: float) -> bool:
        return score >= self.match_threshold


async def answer_all(
    backend: SLMBackend,
    specialist: Specialist,
    items: Sequence[HeldOutItem],
    scorer: AgreementScorer,
    *,
    on_answer: Callable[[], None] = lambda: None,
) -> list[Outcome]:
    """``specialist``'s outcome on every item, in order; an answer that failed counts as an
    invalid, disagreeing one with confidence 0."""
    validator = get_validator(specialist.validator)
    limit = asyncio.Semaphore(MAX_CONCURRENCY)

    async def one(item: HeldOutItem) -> Outcome:
        async with limit:
            try:
                generation = await backend.generate(specialist, list(item.messages))
            except SpecialistError:
                on_answer()
                return Outcome(0.0, False, 0.0, False, 0)
        score = await asyncio.to_thread(scorer.score, generation.text, item.reference)
        on_answer()
        return Outcome(
            confidence=generation.confidence.mean_prob,
            valid=validator(generation.text).ok,
            score=score,
            agrees=scorer.agrees(score),
            tokens=generation.usage.total_tokens,
        )

    return list(await asyncio.gather(*(one(item) for item in items)))


def acceptance(outcomes: Sequence[Outcome], threshold: float | None) -> Acceptance:
    """What is accepted at ``threshold`` (``None``: nothing)."""
    accepted = (
        [o for o in outcomes if o.valid and o.confidence >= threshold]
        if threshold is not None
        else []
    )
    agreeing = sum(o.agrees for o in accepted)
    return Acceptance(
        threshold=threshold,
        accepted=len(accepted),
        coverage=len(accepted) / len(outcomes) if outcomes else 0.0,
        precision=agreeing / len(accepted) if accepted else None,
    )


def calibrate(outcomes: Sequence[Outcome], target: float, min_accepted: int) -> float | None:
    """The lowest threshold whose accepted answers reach ``target`` precision, over at least
    ``min_accepted`` of them; ``None`` when there is none.

    Lower thresholds accept more, so the lowest one that is precise enough keeps the most
    traffic from the lead. Every threshold between the lowest confidence accepted and the
    highest one left out accepts the same validation answers; the middle of that gap is
    returned, so a new answer a hair below the lowest one seen is not escalated for it.
    """
    confidences = sorted({o.confidence for o in outcomes if o.valid})
    for index, threshold in enumerate(confidences):
        result = acceptance(outcomes, threshold)
        if result.accepted < min_accepted:
            return None  # higher thresholds accept even fewer
        if result.precision is not None and result.precision >= target:
            return (threshold + confidences[index - 1]) / 2 if index else threshold
    return None


@dataclass(frozen=True, slots=True)
class Verdict:
    threshold: float | None
    passed: bool
    reasons: tuple[str, ...]
    metrics: dict[str, Any]


def judge(
    *,
    val: Sequence[Outcome],
    test: Sequence[Outcome],
    current_test: Sequence[Outcome],
    current_threshold: float,
    gate: GateConfig,
    scorer: AgreementScorer,
    lead_cost_usd: float | None,
    slm_cost_per_token: float,
) -> Verdict:
    """Calibrate on ``val``, check on ``test`` (see the module docstring), with the figures."""
    target = gate.target_precision
    threshold = calibrate(val, target, gate.min_accepted)
    on_test = acceptance(test, threshold)
    reasons = []
    if threshold is None:
        reasons.append(
            f"no confidence threshold reaches {target:.0%} agreement with the lead over at "
            f"least {gate.min_accepted} validation answers"
        )
    elif on_test.precision is None:
        reasons.append(f"no test answer reaches the calibrated threshold {threshold:.3f}")
    elif on_test.precision < target - gate.precision_tolerance:
        reasons.append(
            f"test precision {on_test.precision:.1%} is below {target:.0%} "
            f"(tolerance {gate.precision_tolerance:.0%})"
        )
    candidate_accuracy, current_accuracy = _accuracy(test), _accuracy(current_test)
    if candidate_accuracy < current_accuracy:
        reasons.append(
            f"the candidate agrees with the lead on {candidate_accuracy:.1%} of test requests, "
            f"the current version on {current_accuracy:.1%}"
        )
    slm_cost = _mean([o.tokens for o in test]) * slm_cost_per_token
    metrics: dict[str, Any] = {
        "scorer": scorer.name,
        "match_threshold": scorer.match_threshold,
        "target_precision": target,
        "val": {"items": len(val), **asdict(acceptance(val, threshold))},
        "test": {
            "items": len(test),
            "candidate": _figures(test, on_test, slm_cost),
            "current": _figures(
                current_test,
                acceptance(current_test, current_threshold),
                _mean([o.tokens for o in current_test]) * slm_cost_per_token,
            ),
            "lead": {"agreement": 1.0, "cost_usd": lead_cost_usd},
        },
        "gate": {"passed": not reasons, "reasons": reasons},
    }
    if lead_cost_usd:
        cascade = slm_cost + (1 - on_test.coverage) * lead_cost_usd
        metrics["test"]["cascade_cost_usd"] = cascade
        metrics["test"]["savings"] = 1 - cascade / lead_cost_usd
    return Verdict(threshold, not reasons, tuple(reasons), metrics)


def candidate_specialist(current: Specialist, version: SpecialistVersion) -> Specialist:
    """``current`` with the candidate's adapter, served under the candidate's own versioned
    name (``math@v3-1f2e3d4c``), so that loading it for evaluation never touches what is served."""
    return replace(
        current,
        adapter=Path(version.adapter_path),
        version=version_tag(version),
        base_model=None,
    )


def _figures(outcomes: Sequence[Outcome], accepted: Acceptance, slm_cost: float) -> dict[str, Any]:
    return {
        "agreement": _mean([o.score for o in outcomes]),
        "accuracy": _accuracy(outcomes),
        "valid": _mean([float(o.valid) for o in outcomes]),
        **asdict(accepted),
        "slm_cost_usd": slm_cost,
    }


def _accuracy(outcomes: Sequence[Outcome]) -> float:
    return _mean([float(o.agrees) for o in outcomes])


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def lead_costs(costs: Mapping[str, float], items: Sequence[HeldOutItem]) -> float | None:
    """Mean lead cost per request of the items whose runs are known, ``None`` if none is."""
    known = [
        costs[item.run_id] for item in items if item.run_id is not None and item.run_id in costs
    ]
    return _mean(known) if known else None


@dataclass(frozen=True, slots=True)
class HeldOut:
    """A dataset's held-out splits, read and checked before anything is registered."""

    directory: Path
    val: list[HeldOutItem]
    test: list[HeldOutItem]

    @classmethod
    def read(cls, directory: Path) -> HeldOut:
        """The ``val`` and ``test`` splits of the dataset in ``directory``.

        Raises:
            DatasetError: A split is missing, malformed or empty: the gate needs both.
        """
        val, test = read_split(directory, "val"), read_split(directory, "test")
        if not val or not test:
            raise DatasetError(
                f"{directory} has {len(val)} validation and {len(test)} test examples; the "
                "evaluation gate needs both (collect more transcripts and rebuild the dataset, "
                "or raise UNDERSTUDY_DISTILL_VAL_FRACTION / _TEST_FRACTION)"
            )
        return cls(directory, val, test)

    @property
    def size(self) -> int:
        return len(self.val) + len(self.test)


async def evaluate_version(
    registry: RegistryStore,
    version: SpecialistVersion,
    held_out: HeldOut,
    *,
    current: Specialist,
    backend: SLMBackend,
    gate: GateConfig,
    lead_cost_by_run: Mapping[str, float],
    slm_cost_per_token: float,
    on_answer: Callable[[], None] = lambda: None,
) -> SpecialistVersion:
    """Answer the held-out splits with the candidate (``version``) and ``current``, judge, and
    record the figures, threshold and verdict in the registry.

    Args:
        current: The specialist as served now: the candidate inherits its prompt, validator
            and generation parameters, and must agree with the lead at least as often.
        lead_cost_by_run: What the lead's answer cost, by run id (for the cost comparison).
    """
    candidate = candidate_specialist(current, version)
    served_name = served_adapter_name(candidate)
    scorer = AgreementScorer(current.validator, gate.match_threshold)
    assert candidate.adapter is not None
    val, test = await _answer_as_candidate(
        backend, candidate, served_name, held_out, scorer, on_answer=on_answer
    )
    current_test = await answer_all(backend, current, held_out.test, scorer, on_answer=on_answer)
    verdict = judge(
        val=val,
        test=test,
        current_test=current_test,
        current_threshold=current.confidence_threshold,
        gate=gate,
        scorer=scorer,
        lead_cost_usd=lead_costs(lead_cost_by_run, held_out.test),
        slm_cost_per_token=slm_cost_per_token,
    )
    metrics = {**verdict.metrics, "dataset": str(held_out.directory)}
    return await registry.record_evaluation(
        version.id, metrics=metrics, threshold=verdict.threshold, gate_passed=verdict.passed
    )


async def _answer_as_candidate(
    backend: SLMBackend,
    candidate: Specialist,
    served_name: str,
    held_out: HeldOut,
    scorer: AgreementScorer,
    *,
    on_answer: Callable[[], None],
) -> tuple[list[Outcome], list[Outcome]]:
    """The candidate's answers to both splits, with its adapter loaded under its served name
    for the whole evaluation (held: no registry sync unloads it between two answers) and
    unloaded afterwards, if the evaluation was what loaded it."""
    assert candidate.adapter is not None
    loaded_before = served_name in await backend.loaded_adapters()
    try:
        with backend.adapter_uses.hold(served_name):
            await backend.load_adapter(served_name, candidate.adapter)
            val = await answer_all(backend, candidate, held_out.val, scorer, on_answer=on_answer)
            test = await answer_all(backend, candidate, held_out.test, scorer, on_answer=on_answer)
    finally:
        if not loaded_before:
            try:
                await backend.unload_adapter(served_name)
            except SpecialistError as exc:  # it stays loaded; the verdict does not depend on it
                logger.warning("the evaluated adapter %s stays loaded: %s", served_name, exc)
    return val, test


async def register_adapter(
    registry: RegistryStore,
    known: Catalog,
    base: ServedBase,
    name: str,
    adapter: Path,
    held_out: HeldOut,
) -> tuple[SpecialistVersion, Specialist]:
    """``adapter`` as a candidate version of ``name`` (registered now, or found registered),
    and the specialist as served now, which it is compared with.

    Args:
        known: Every specialist a version may belong to (:func:`distill.catalog.known_catalog`).
        base: The base the SLM servers run.

    Raises:
        UnknownSpecialistError: ``name`` is neither in the catalog nor in the registry.
        ModelError, ConfigurationError: The adapter cannot be served on this base (wrong base,
            rank above the server's maximum); nothing is registered then.
    """
    version = await register_candidate(
        registry, known, name, adapter, base, dataset=held_out.directory
    )
    return version, known.get(name)


async def evaluate_registered(
    store: TranscriptStore,
    registry: RegistryStore,
    backend: SLMBackend,
    version: SpecialistVersion,
    current: Specialist,
    held_out: HeldOut,
    *,
    gate: GateConfig,
    slm_cost_per_token: float,
    on_answer: Callable[[], None] = lambda: None,
) -> SpecialistVersion:
    """:func:`evaluate_version` with the lead's costs of the test requests read from their
    transcripts."""
    costs = {}
    for item in held_out.test:
        if item.run_id is not None:
            with contextlib.suppress(RunNotFound):
                costs[item.run_id] = (await store.get_run(item.run_id)).cost_usd
    return await evaluate_version(
        registry,
        version,
        held_out,
        current=current,
        backend=backend,
        gate=gate,
        lead_cost_by_run=costs,
        slm_cost_per_token=slm_cost_per_token,
        on_answer=on_answer,
    )
