"""Metrics on hand-built items: the bootstrap interval, percentiles, per-mode figures, and the
cascade curve derived offline from the drafts."""

from __future__ import annotations

from typing import Any

import pytest

from evals.metrics import (
    bootstrap_mean_ci,
    cascade_curve,
    mode_metrics,
    percentile,
)
from evals.records import Draft, ItemResult
from orchestrator.outcome import Failure, FailureKind


def item(
    sample_id: str,
    mode: str = "cascade",
    *,
    lead_tokens: int = 100,
    slm_tokens: int = 0,
    error: str | None = None,
    **fields: Any,
) -> ItemResult:
    """An item with these figures (tokens all on the input side; ``error``: a dead lead)."""
    values: dict[str, Any] = {
        "suite": "gsm8k",
        "sample_id": sample_id,
        "mode": mode,
        "config_hash": "h",
        "run_id": f"run-{sample_id}-{mode}",
        "answer": "42",
        "route": mode,
        "specialists": [],
        "escalated": False,
        "degraded": False,
        "confidence": None,
        "lead_input_tokens": lead_tokens,
        "lead_output_tokens": 0,
        "slm_prompt_tokens": slm_tokens,
        "slm_completion_tokens": 0,
        "cost_usd": 0.1,
        "slm_cost_usd": 0.0,
        "lead_only_cost_usd": 0.1,
        "latency_ms": 100.0,
        "failure": Failure(FailureKind.lead_unavailable, error) if error else None,
        "tool_calls": 0,
        "score": 1.0,
    }
    return ItemResult(**{**values, **fields})


def draft(confidence: float, *, valid: bool = True, score: float = 1.0) -> Draft:
    return Draft(specialist="math", confidence=confidence, valid=valid, score=score, cost_usd=0.001)


def test_bootstrap_interval_is_seeded_and_brackets_the_mean() -> None:
    scores = [1.0] * 80 + [0.0] * 20
    first = bootstrap_mean_ci(scores, seed=7)
    assert first == bootstrap_mean_ci(scores, seed=7)
    graded = [i / 99 for i in range(100)]  # continuous scores (ROUGE, a judge) show the seed
    assert bootstrap_mean_ci(graded, seed=7) != bootstrap_mean_ci(graded, seed=8)
    # the normal approximation: 0.8 ± 1.96 * sqrt(0.8 * 0.2 / 100) = [0.72, 0.88]
    assert first.low == pytest.approx(0.72, abs=0.015)
    assert first.high == pytest.approx(0.88, abs=0.015)


def test_bootstrap_interval_narrows_with_more_items_and_is_zero_width_when_all_agree() -> None:
    small = bootstrap_mean_ci([1.0, 0.0] * 5, seed=0)
    large = bootstrap_mean_ci([1.0, 0.0] * 500, seed=0)
    assert large.high - large.low < (small.high - small.low) / 5
    assert bootstrap_mean_ci([1.0] * 10, seed=0).low == 1.0
    with pytest.raises(ValueError, match="no values"):
        bootstrap_mean_ci([], seed=0)


def test_percentiles_interpolate() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile([3.0], 95) == 3.0


def test_mode_metrics_count_what_each_figure_means() -> None:
    items = [
        item("a", score=1.0, cost_usd=0.25, latency_ms=100, tool_calls=2, escalated=True),
        item("b", score=0.0, cost_usd=0.25, latency_ms=300, tool_calls=1),
        item("c", answer=None, score=0.0, cost_usd=0.0, latency_ms=200, error="lead down"),
        item("d", lead_tokens=0, slm_tokens=50, cost_usd=0.5, latency_ms=400, degraded=True),
    ]
    m = mode_metrics("cascade", items, seed=0)
    assert m.items == 4 and m.accuracy == 0.5
    assert m.accuracy_ci.low <= 0.5 <= m.accuracy_ci.high
    assert m.cost_usd == 1.0 and m.cost_per_item_usd == 0.25
    assert m.latency_p50_ms == 250 and m.latency_p95_ms == pytest.approx(385)
    assert m.lead_tokens == 300 and m.slm_tokens == 50
    assert m.tool_calls_per_item == 0.75
    assert m.escalation_rate == 0.25 and m.without_lead_share == 0.25
    assert m.failed == 1 and m.degraded == 1


# Four cascade items: each case of the curve's rule.
ACCEPTED = item("a", draft=draft(0.9), score=1.0, cost_usd=0.001, lead_tokens=0)
"""Accepted in the measured run: below 0.9 the draft, above it the router's answer."""
ESCALATED_LOW = item("b", draft=draft(0.4, score=0.0), escalated=True, score=1.0, cost_usd=0.2)
"""Escalated for low confidence: accepted (and wrong) only at thresholds up to 0.4."""
ESCALATED_INVALID = item(
    "c", draft=draft(0.95, valid=False, score=0.0), escalated=True, cost_usd=0.3
)
"""Failed its validator: never accepted, whatever the threshold."""
NO_SPECIALIST = item("d", route="cascade:lead", score=0.0, cost_usd=0.15)
"""No specialist fitted: always the lead."""
CASCADE = [ACCEPTED, ESCALATED_LOW, ESCALATED_INVALID, NO_SPECIALIST]
ROUTER = {"a": item("a", mode="router", score=0.0, cost_usd=0.1)}


def test_cascade_curve_applies_each_threshold_to_the_recorded_drafts() -> None:
    low, configured, high = cascade_curve(CASCADE, ROUTER, [0.0, 0.5, 0.95])
    assert low.accuracy == 0.5 and low.without_lead_share == 0.5  # a, b by drafts; c, d measured
    assert low.cost_usd == pytest.approx(0.001 + 0.001 + 0.3 + 0.15)
    # between the drafts' confidences: exactly the measured cascade
    measured = mode_metrics("cascade", CASCADE, seed=0)
    assert configured.accuracy == measured.accuracy == 0.75
    assert configured.cost_usd == pytest.approx(measured.cost_usd)
    assert configured.without_lead_share == measured.without_lead_share == 0.25
    # above every draft: item a goes to the router (its score, plus the draft already paid)
    assert high.accuracy == 0.5 and high.without_lead_share == 0.0
    assert high.cost_usd == pytest.approx(0.001 + 0.1 + 0.2 + 0.3 + 0.15)


def test_cascade_curve_needs_a_substitute_for_every_accepted_draft() -> None:
    assert cascade_curve(CASCADE, {}, [0.5]) is None
    escalated_only = [ESCALATED_LOW, NO_SPECIALIST]
    assert cascade_curve(escalated_only, {}, [0.5]) is not None
    assert cascade_curve([], ROUTER, [0.5]) is None
