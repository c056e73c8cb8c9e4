"""Fit cascade's difficulty model on the product's own cascade transcripts.

Labels (read from run summaries): ``cascade:accepted:<s>`` → not escalated;
``cascade:escalated:<s>`` whose lead answer stood (no failure, not degraded) → escalated. Failed,
degraded and tool-handover runs teach nothing. Prompts on the ``train`` side of
:func:`evals.suites.routing.split_of` fit the model; those on the ``heldout`` side measure its
AUC (the gate) and the lead-share curve the cost/quality knob reads
(:func:`orchestrator.difficulty.lead_share_curve`).

The fitted scikit-learn pipeline (:func:`evals.router_eval.difficulty.difficulty_pipeline`) is
collapsed into the one weight vector it computes, so serving needs numpy alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from distill.prerouter.labels import prompt_of
from evals.router_eval.difficulty import (
    DEFAULT_COMPONENTS,
    DEFAULT_REGULARIZATION,
    difficulty_pipeline,
)
from evals.suites.routing import split_of
from orchestrator.difficulty import DifficultyModel, lead_share_curve
from orchestrator.difficulty_features import text_features
from orchestrator.prerouter import Embedder, embed_prompts
from orchestrator.transcripts import RunRecord

MIN_PER_OUTCOME = 20
"""Fewest accepted and fewest escalated training runs to fit a model at all."""
MIN_HELD_OUT_PER_OUTCOME = 5
"""Fewest of each outcome on the held-out side to measure the model."""
MIN_AUC = 0.6
"""The gate: a model that ranks escalations no better than this would skip at random."""


@dataclass(frozen=True, slots=True)
class CascadeOutcome:
    """One cascade attempt: what was asked, which specialist tried, whether it escalated."""

    prompt: str
    specialist: str
    escalated: bool


@dataclass(frozen=True, slots=True)
class DifficultyFit:
    """A fitted model when it passed its gate (``None`` otherwise), and the gate's figures."""

    model: DifficultyModel | None
    gate: dict[str, Any]


def outcome_of(run: RunRecord) -> CascadeOutcome | None:
    """The cascade outcome ``run`` teaches (see the module's docstring), or ``None``."""
    if run.failure is not None or run.degraded or run.app_tool_calls:
        return None
    parts = run.route.split(":")
    prompt = prompt_of(run)
    if (
        prompt is None
        or len(parts) != 3
        or parts[:2]
        not in (
            ["cascade", "accepted"],
            ["cascade", "escalated"],
        )
    ):
        return None
    return CascadeOutcome(prompt, parts[2], escalated=parts[1] == "escalated")


def cascade_outcomes(runs: Sequence[RunRecord], known: Sequence[str]) -> list[CascadeOutcome]:
    """The outcomes of ``runs`` with a specialist in ``known`` (latest per prompt and
    specialist)."""
    latest: dict[tuple[str, str], CascadeOutcome] = {}
    for run in sorted(runs, key=lambda r: r.created_at):
        outcome = outcome_of(run)
        if outcome is not None and outcome.specialist in known:
            latest[outcome.prompt, outcome.specialist] = outcome
    return list(latest.values())


def fit_difficulty(
    outcomes: Sequence[CascadeOutcome], embedder: Embedder, *, embedder_id: str
) -> DifficultyFit:
    """Fit on the train side of ``outcomes``, gate and calibrate on the held-out side."""
    train = [o for o in outcomes if split_of(o.prompt) == "train"]
    held = [o for o in outcomes if split_of(o.prompt) == "heldout"]
    counts = {
        "train_escalated": sum(o.escalated for o in train),
        "train_accepted": sum(not o.escalated for o in train),
        "held_out_escalated": sum(o.escalated for o in held),
        "held_out_accepted": sum(not o.escalated for o in held),
    }
    if (
        min(counts["train_escalated"], counts["train_accepted"]) < MIN_PER_OUTCOME
        or min(counts["held_out_escalated"], counts["held_out_accepted"]) < MIN_HELD_OUT_PER_OUTCOME
    ):
        reason = (
            f"too few cascade outcomes to fit the difficulty skip ({counts}; it needs "
            f"{MIN_PER_OUTCOME} of each to train and {MIN_HELD_OUT_PER_OUTCOME} held out)"
        )
        return DifficultyFit(None, {**counts, "passed": False, "reason": reason})
    specialists = tuple(sorted({o.specialist for o in train}))
    features, dim = _features(train, embedder, specialists)
    pipeline = difficulty_pipeline(
        dim,
        components=min(DEFAULT_COMPONENTS, dim, len(train)),
        regularization=DEFAULT_REGULARIZATION,
    )
    pipeline.fit(features, np.array([o.escalated for o in train]))
    weights, bias = collapse(pipeline)
    held_features, _ = _features(held, embedder, specialists)
    scores = 1.0 / (1.0 + np.exp(-(held_features @ weights + bias)))
    escalated = [o.escalated for o in held]
    auc = _auc(scores, escalated)
    thresholds, shares = lead_share_curve(scores.tolist(), escalated)
    passed = auc >= MIN_AUC
    reason = f"held-out AUC {auc:.3f} {'≥' if passed else '<'} {MIN_AUC}"
    gate = {**counts, "auc": round(auc, 4), "passed": passed, "reason": reason}
    if not passed:
        return DifficultyFit(None, gate)
    model = DifficultyModel(
        specialists=specialists,
        weights=weights.astype(np.float32),
        bias=bias,
        embedder=embedder_id,
        thresholds=thresholds,
        lead_shares=shares,
        auc=auc,
    )
    return DifficultyFit(model, {**gate, "base_lead_share": round(model.base_lead_share, 4)})


def collapse(pipeline: Any) -> tuple[np.ndarray, float]:
    """The (weights, bias) of the linear map a fitted PCA → scaler → logistic pipeline applies
    before its sigmoid: ``z = a·(u - m)/s + b`` with ``u = [P(x_e - μ), x_rest]`` is
    ``(Pᵀ a_e/s_e)·x_e + (a_r/s_r)·x_rest + b - a·m/s - (Pᵀ a_e/s_e)·μ``."""
    columns, scaler, classifier = (step for _, step in pipeline.steps)
    pca = columns.named_transformers_["embedding"]
    scaled = classifier.coef_[0] / scaler.scale_
    components = pca.components_.shape[0]
    embedding_weights = pca.components_.T @ scaled[:components]
    weights = np.concatenate([embedding_weights, scaled[components:]])
    bias = float(classifier.intercept_[0] - scaled @ scaler.mean_ - embedding_weights @ pca.mean_)
    return weights, bias


def _features(
    outcomes: Sequence[CascadeOutcome], embedder: Embedder, specialists: Sequence[str]
) -> tuple[np.ndarray, int]:
    """Rows as :meth:`DifficultyModel.score` builds them: embedding, counts, indicators."""
    prompts = [o.prompt for o in outcomes]
    vectors = embed_prompts(embedder, prompts)
    indicators = np.array(
        [[o.specialist == name for name in specialists] for o in outcomes], dtype=np.float32
    ).reshape(len(outcomes), len(specialists))
    return np.hstack([vectors, text_features(prompts), indicators]), vectors.shape[1]


def _auc(scores: np.ndarray, positive: Sequence[bool]) -> float:
    """P(a random escalated run scores above a random accepted one), ties counting half."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.asarray(positive, dtype=int), scores))
