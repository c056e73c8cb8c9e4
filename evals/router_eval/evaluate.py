"""Evaluate routers on a label set: score, sweep thresholds, summarise (RouteLLM's procedure).

``routellm/evals/evaluate.py`` (``lm-sys/RouteLLM`` at ``0b64fda``) seeds each router
afresh, runs the random router ``--random-iters`` times and averages its curves, and runs every
other router once; :func:`evaluate_router` does the same, with ``passes`` taken from the router.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from evals.router_eval.labels import RoutingLabels
from evals.router_eval.metrics import (
    DEFAULT_NUM_THRESHOLDS,
    CurvePoint,
    RouterMetrics,
    average_curves,
    summarize,
    threshold_sweep,
)
from evals.router_eval.routers import Router


@dataclass(frozen=True, slots=True)
class RouterResult:
    """One router's curve and its summary."""

    name: str
    passes: int
    """Scorings averaged into the curve (10 for random, else 1)."""
    curve: list[CurvePoint]
    """Sorted by strong-call percentage for an averaged curve, else in threshold order."""
    metrics: RouterMetrics

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passes": self.passes,
            **self.metrics.as_dict(),
            "curve": [asdict(point) for point in self.curve],
        }


@dataclass(frozen=True, slots=True, eq=False)
class Evaluation:
    """Every router's result on one label set, and what the set was."""

    labels: RoutingLabels
    results: Sequence[RouterResult]
    seed: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (``--json``, ``--out``)."""
        labels = self.labels
        return {
            "labels": {
                "name": labels.name,
                "source": labels.source,
                "prompts": len(labels),
                "excluded_contaminated": labels.excluded,
                "unit": labels.unit,
                "weak_model": labels.weak_model,
                "strong_model": labels.strong_model,
                "weak_quality": labels.weak_quality,
                "strong_quality": labels.strong_quality,
            },
            "seed": self.seed,
            "routers": [result.as_dict() for result in self.results],
        }


def evaluate_router(
    router: Router,
    labels: RoutingLabels,
    *,
    seed: int = 0,
    num_thresholds: int = DEFAULT_NUM_THRESHOLDS,
) -> RouterResult:
    """Score ``labels`` ``router.passes`` times (seeds ``seed``, ``seed + 1``, …), sweep each
    scoring's thresholds, average the curves when there are several, and summarise."""
    curves = [
        threshold_sweep(router.score(labels, seed=seed + i), labels, num_thresholds=num_thresholds)
        for i in range(router.passes)
    ]
    curve = curves[0] if len(curves) == 1 else average_curves(curves)
    metrics = summarize(
        curve, weak_quality=labels.weak_quality, strong_quality=labels.strong_quality
    )
    return RouterResult(name=router.name, passes=router.passes, curve=curve, metrics=metrics)
