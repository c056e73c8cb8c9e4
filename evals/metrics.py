"""Figures per mode, and the cascade's accuracy/cost curve over its confidence threshold.

Accuracy comes with a 95 % percentile-bootstrap interval (seeded, so a report is reproducible);
latency with its median and 95th percentile. Everything here is computed from
:class:`~evals.records.ItemResult` lines, so a report can be rebuilt from the files alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from evals.records import ItemResult

BOOTSTRAP_RESAMPLES = 10_000
CONFIDENCE_LEVEL = 0.95


@dataclass(frozen=True, slots=True)
class Interval:
    """A confidence interval."""

    low: float
    high: float


def bootstrap_mean_ci(
    values: Sequence[float],
    *,
    seed: int,
    level: float = CONFIDENCE_LEVEL,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> Interval:
    """Percentile-bootstrap interval of the mean: resample the items with replacement.

    With a handful of items the interval is honest about how little they say (10 items at 80 %
    give roughly 50-100 %); identical values give a zero-width interval.
    """
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("no values to bootstrap")
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(float(low), float(high))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linearly interpolated."""
    if not values:
        raise ValueError("no values")
    return float(np.percentile(np.asarray(values, dtype=float), q))


@dataclass(frozen=True, slots=True)
class ModeMetrics:
    """One mode's figures over the evaluated samples. Costs are totals over all items."""

    mode: str
    items: int
    accuracy: float
    """Mean score (0-1); failed runs score 0."""
    accuracy_ci: Interval
    cost_usd: float
    cost_per_item_usd: float
    lead_only_cost_usd: float
    """What the same tokens would have cost on the lead alone."""
    latency_p50_ms: float
    latency_p95_ms: float
    lead_tokens: int
    slm_tokens: int
    tool_calls_per_item: float
    escalation_rate: float
    """Share of items the cascade handed to the lead (0 outside cascade mode)."""
    without_lead_share: float
    """Share of items answered with no lead token spent."""
    failed: int
    """Items with no answer (counted as wrong)."""
    degraded: int
    """Items answered by a specialist because the lead failed."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def mode_metrics(mode: str, items: Sequence[ItemResult], *, seed: int) -> ModeMetrics:
    """The figures of one mode's items."""
    if not items:
        raise ValueError(f"mode {mode!r} has no items")
    n = len(items)
    scores = [item.score for item in items]
    latencies = [item.latency_ms for item in items]
    cost = sum(item.cost_usd for item in items)
    return ModeMetrics(
        mode=mode,
        items=n,
        accuracy=float(np.mean(scores)),
        accuracy_ci=bootstrap_mean_ci(scores, seed=seed),
        cost_usd=cost,
        cost_per_item_usd=cost / n,
        lead_only_cost_usd=sum(item.lead_only_cost_usd for item in items),
        latency_p50_ms=percentile(latencies, 50),
        latency_p95_ms=percentile(latencies, 95),
        lead_tokens=sum(item.lead_tokens for item in items),
        slm_tokens=sum(item.slm_tokens for item in items),
        tool_calls_per_item=sum(item.tool_calls for item in items) / n,
        escalation_rate=sum(item.escalated for item in items) / n,
        without_lead_share=sum(item.without_lead for item in items) / n,
        failed=sum(item.answer is None for item in items),
        degraded=sum(item.degraded for item in items),
    )


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """The cascade as it would have scored with one threshold applied to every specialist."""

    threshold: float
    accuracy: float
    cost_usd: float
    without_lead_share: float


CURVE_DERIVATION = (
    "The cascade curve is computed offline from the cascade run's items, with one confidence "
    "threshold t applied to every specialist. At each t, an item whose specialist draft passed "
    "its validator and had a mean token probability of at least t is counted as answered by "
    "the draft: the draft's own score and SLM cost. Every other item goes to the lead: where "
    "the measured run escalated it too (or no specialist fitted), its measured result is used; "
    "where the measured run accepted the draft, the {substitute} mode's result for the same "
    "sample is used, plus the draft's cost. Where t equals the configured threshold of every "
    "specialist involved, the curve therefore passes through the measured cascade point. A "
    "draft's SLM cost is exact when it was accepted and an upper bound when it was escalated."
)


def cascade_curve(
    cascade: Sequence[ItemResult],
    substitutes: Mapping[str, ItemResult],
    thresholds: Sequence[float],
) -> list[CurvePoint] | None:
    """Accuracy and cost of the cascade at each threshold (see :data:`CURVE_DERIVATION`).

    Args:
        cascade: The cascade mode's items.
        substitutes: By sample id, what the lead alone would have done where the measured run
            accepted a draft (the router mode's items, else the llm mode's).

    Returns:
        One point per threshold, or ``None`` when a needed substitute is missing.
    """
    if not cascade:
        return None
    needs_substitute = [item for item in cascade if item.draft is not None and not item.escalated]
    if any(item.sample_id not in substitutes for item in needs_substitute):
        return None
    points = []
    for threshold in thresholds:
        scores, costs, without_lead = [], [], 0
        for item in cascade:
            draft = item.draft
            if draft is not None and draft.valid and draft.confidence >= threshold:
                scores.append(draft.score)
                costs.append(draft.cost_usd)
                without_lead += 1
            elif draft is None or item.escalated:
                scores.append(item.score)
                costs.append(item.cost_usd)
                without_lead += item.without_lead
            else:
                substitute = substitutes[item.sample_id]
                scores.append(substitute.score)
                costs.append(draft.cost_usd + substitute.cost_usd)
                without_lead += substitute.without_lead
        points.append(
            CurvePoint(
                threshold=float(threshold),
                accuracy=float(np.mean(scores)),
                cost_usd=float(sum(costs)),
                without_lead_share=without_lead / len(cascade),
            )
        )
    return points
