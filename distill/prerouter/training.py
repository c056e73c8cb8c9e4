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

import numpy as np

from distill.prerouter.difficulty import CascadeOutcome, DifficultyFit, fit_difficulty
from distill.prerouter.labels import SOURCE
from distill.prerouter.seed import Labelled
from distill.prerouter.versions import RouterVersion, RouterVersions
from evals.scorers.routing import RoutingFigures, routing_figures
from evals.suites.routing import split_of
from orchestrator.prerouter import Embedder, PreRouter, embed_prompts
from orchestrator.prerouter_learned import LearnedPreRouter, embedder_identity
from orchestrator.prerouter_model import (
    MIN_PER_CLASS,
    NONE,
    TARGET_PRECISION,
    RouterModel,
    fit_router_model,
)
from orchestrator.prerouter_two_stage import TwoStagePreRouter
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


CUT_GRID = tuple(round(0.5 + 0.01 * step, 2) for step in range(50))
"""Cuts :func:`choose_cut` tries, 0.50 to 0.99: below 0.5 a class may be "sure" while another is
about as likely."""
FAST_MAX_ERROR = 0.005
"""Most out-of-fold errors the static classifier may make on the prompts it decides. Seed
examples are easier than real requests (both classifiers err ~2 % on them out of fold, while on
the routing suite's held-out side the static one errs 8.6 % and MiniLM 5.4 %), so matching
MiniLM on them alone let the static stage take 95 % of the suite and lose 0.8 points of
accuracy; at 0.5 % it takes the two thirds it is surest of and the mix matches MiniLM
(``python benchmarks/prerouter.py``)."""


def decisions(router: PreRouter, prompts: Sequence[str]) -> list[str]:
    return [d.specialist or NONE for d in router.route_many(prompts)]


def gate(
    candidate: PreRouter, active: PreRouter | None, held_out: Sequence[Labelled]
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
    fast_embedder: Embedder | None = None,
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
        fast_embedder: The static embedding: the version becomes two-stage (the static
            classifier decides where it is sure, :func:`choose_cut`) when a cut keeps MiniLM's
            accuracy and precision out of fold; recorded as the gate's ``two_stage``.
    """
    counts = Counter(e.label for e in examples)
    unlearned = sorted(
        name for name in {*catalog.names, *counts} if name != NONE and counts[name] < MIN_PER_CLASS
    )
    examples = [e for e in examples if e.label not in unlearned]
    prompts, labels = [e.prompt for e in examples], [e.label for e in examples]
    model, model_oof = fit_router_model(
        embed_prompts(embedder, prompts), labels, embedder=embedder_identity(embedder)
    )
    precise = LearnedPreRouter(catalog, embedder, model, version=None)
    candidate: PreRouter = precise
    fast, cut = None, None
    two_stage: dict[str, object] = {"trained": False}
    if fast_embedder is not None:
        fast, fast_oof = fit_router_model(
            embed_prompts(fast_embedder, prompts), labels, embedder=embedder_identity(fast_embedder)
        )
        cut = choose_cut(fast, fast_oof, model, model_oof, labels)
        two_stage = {"trained": True, "cut": cut}
        if cut is not None:
            fast_router = LearnedPreRouter(catalog, fast_embedder, fast, version=None)
            candidate = TwoStagePreRouter(fast_router, precise, cut=cut)
    current = versions.active()
    active = None
    if current is not None and current.embedder == model.embedder:
        active = versions.router(current, catalog, embedder, fast_embedder=fast_embedder)
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
        gate={**result.as_dict(), "difficulty": difficulty.gate, "two_stage": two_stage},
        difficulty=difficulty.model,
        difficulty_labels=len(outcomes),
        fast=fast if cut is not None else None,
        cut=cut,
    )
    promoted = promote and result.passed
    if promoted:
        entry = versions.promote(entry.version)
    return TrainingOutcome(model, result, entry, promoted, tuple(unlearned), difficulty)


def choose_cut(
    fast: RouterModel,
    fast_probabilities: np.ndarray,
    precise: RouterModel,
    precise_probabilities: np.ndarray,
    labels: Sequence[str],
) -> float | None:
    """The lowest cut of :data:`CUT_GRID` at which the static classifier's own decisions (the
    rows it is that sure of) err at most :data:`FAST_MAX_ERROR`, and the two-stage mix is as
    accurate as ``precise`` alone with a lowest specialist precision no worse — all on
    out-of-fold probabilities of the same examples; ``None`` when no cut is (MiniLM alone)."""
    fast_decisions = np.array([fast.decide(row) for row in fast_probabilities])
    precise_decisions = np.array([precise.decide(row) for row in precise_probabilities])
    truth = np.asarray(labels)
    bar = routing_figures(labels, precise_decisions.tolist())
    top = fast_probabilities.max(axis=1)
    for cut in CUT_GRID:
        sure = top >= cut
        if not sure.any():
            return None  # nothing left for the fast stage: MiniLM alone
        if np.mean(fast_decisions[sure] != truth[sure]) > FAST_MAX_ERROR:
            continue
        figures = routing_figures(
            labels, np.where(sure, fast_decisions, precise_decisions).tolist()
        )
        if figures.accuracy >= bar.accuracy and figures.min_precision >= bar.min_precision:
            return cut
    return None
