"""Train a pre-router, gate it against the active one, register it: what ``understudy router
train`` and the worker's retraining run.

The held-out set the gate compares on is the ``heldout`` side of the split
(:func:`evals.suites.routing.split_of`): the routing suite's labelled prompts and the transcript
labels whose prompts fall there. Training uses the ``train`` side only. A candidate passes when
its accuracy is not below the active version's and its lowest specialist precision is not below
the active one's (or reaches :data:`~orchestrator.prerouter_model.TARGET_PRECISION`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from distill.prerouter.difficulty import CascadeOutcome, DifficultyFit, fit_difficulty
from distill.prerouter.labels import SOURCE
from distill.prerouter.seed import Labelled
from distill.prerouter.versions import RouterVersion, RouterVersions
from evals.scorers.routing import RoutingFigures, routing_figures
from evals.suites.routing import split_of
from orchestrator.prerouter import Embedder, embed_prompts
from orchestrator.prerouter_learned import LearnedPreRouter, embedder_identity
from orchestrator.prerouter_model import (
    MIN_PER_CLASS,
    NONE,
    TARGET_PRECISION,
    RouterModel,
    fit_router_model,
)
from specialists.catalog import Catalog


@dataclass(frozen=True, slots=True)
class GateResult:
    candidate: RoutingFigures
    active: RoutingFigures | None
    passed: bool
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {
            "candidate": self.candidate.as_dict(),
            "active": None if self.active is None else self.active.as_dict(),
            "passed": self.passed,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class TrainingOutcome:
    model: RouterModel
    gate: GateResult
    version: RouterVersion
    promoted: bool
    unlearned: tuple[str, ...]
    """Specialists with fewer than :data:`MIN_PER_CLASS` examples: not routed to until enough
    transcripts name them (a specialist fresh from distillation with few examples)."""
    difficulty: DifficultyFit
    """Cascade's difficulty skip fitted with it (``model`` ``None`` when it could not be)."""


def split_examples(examples: Sequence[Labelled]) -> tuple[list[Labelled], list[Labelled]]:
    """(train side, held-out side) of ``examples`` by :func:`split_of` on the prompt."""
    train = [e for e in examples if split_of(e.prompt) == "train" or e.source != SOURCE]
    held = [e for e in examples if split_of(e.prompt) == "heldout" and e.source == SOURCE]
    return train, held


def decisions(router: LearnedPreRouter, prompts: Sequence[str]) -> list[str]:
    return [d.specialist or NONE for d in router.route_many(prompts)]


def gate(
    candidate: LearnedPreRouter, active: LearnedPreRouter | None, held_out: Sequence[Labelled]
) -> GateResult:
    """Compare ``candidate`` with ``active`` on ``held_out`` (see the module's docstring)."""
    labels = [e.label for e in held_out]
    prompts = [e.prompt for e in held_out]
    mine = routing_figures(labels, decisions(candidate, prompts))
    if active is None:
        passed = mine.min_precision >= TARGET_PRECISION
        reason = (
            f"no active version; precision {mine.min_precision:.3f} "
            f"{'≥' if passed else '<'} {TARGET_PRECISION}"
        )
        return GateResult(mine, None, passed, reason)
    theirs = routing_figures(labels, decisions(active, prompts))
    precision_ok = mine.min_precision >= min(theirs.min_precision, TARGET_PRECISION)
    accuracy_ok = mine.accuracy >= theirs.accuracy
    passed = precision_ok and accuracy_ok
    reason = (
        f"accuracy {mine.accuracy:.3f} vs active {theirs.accuracy:.3f}, lowest specialist "
        f"precision {mine.min_precision:.3f} vs {theirs.min_precision:.3f}"
    )
    return GateResult(mine, theirs, passed, reason)


def train_and_register(
    examples: Sequence[Labelled],
    held_out: Sequence[Labelled],
    *,
    catalog: Catalog,
    embedder: Embedder,
    versions: RouterVersions,
    promote: bool,
    transcript_labels: int | None = None,
    outcomes: Sequence[CascadeOutcome] = (),
) -> TrainingOutcome:
    """Fit on ``examples``, gate on ``held_out``, register, and promote when asked and passed.

    Args:
        examples: Training examples (train side; transcript labels included).
        held_out: The gate's labelled prompts.
        promote: Promote the candidate when the gate passes (the worker's retraining); a
            refused candidate stays registered as a candidate, with its gate figures.
        transcript_labels: Transcript labels to record (those in the gate set included);
            default: those in ``examples``.
        outcomes: Cascade attempts to fit the difficulty skip on; the version carries that
            model when there are enough and it passes its own gate (recorded as the gate's
            ``difficulty``), and none otherwise. It does not decide the promotion.
    """
    counts = Counter(e.label for e in examples)
    unlearned = sorted(
        name for name in {*catalog.names, *counts} if name != NONE and counts[name] < MIN_PER_CLASS
    )
    examples = [e for e in examples if e.label not in unlearned]
    vectors = embed_prompts(embedder, [e.prompt for e in examples])
    model = fit_router_model(
        vectors, [e.label for e in examples], embedder=embedder_identity(embedder)
    )
    candidate = LearnedPreRouter(catalog, embedder, model, version=None)
    current = versions.active()
    active = None
    if current is not None and current.embedder == model.embedder:
        active = LearnedPreRouter(
            catalog, embedder, versions.load(current), version=current.version
        )
    result = gate(candidate, active, held_out)
    transcripts = (
        sum(e.source == SOURCE for e in examples)
        if transcript_labels is None
        else transcript_labels
    )
    difficulty = fit_difficulty(outcomes, embedder, embedder_id=model.embedder)
    entry = versions.add(
        model,
        transcript_labels=transcripts,
        gate={**result.as_dict(), "difficulty": difficulty.gate},
        difficulty=difficulty.model,
        difficulty_labels=len(outcomes),
    )
    promoted = promote and result.passed
    if promoted:
        entry = versions.promote(entry.version)
    return TrainingOutcome(model, result, entry, promoted, tuple(unlearned), difficulty)
