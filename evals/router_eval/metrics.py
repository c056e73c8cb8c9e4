"""Router metrics computed exactly as RouteLLM computes them.

Source: ``lm-sys/RouteLLM`` at ``0b64fda`` (the commit the labels come from):
``routellm/evals/benchmarks.py`` (``GSM8K.evaluate``: the threshold sweep) and
``routellm/evals/evaluate.py`` (``generate_results``: CPT and APGR; the ``__main__`` block: the
random router's averaging). What each step replicates:

* **Thresholds** (:func:`threshold_sweep`): ``pd.qcut(scores, 10, retbins=True)``'s bin edges,
  i.e. the 0, 10, …, 100 % quantiles of the router's scores with linear interpolation (pandas'
  and numpy's default), 11 thresholds in all. At each threshold but the last, a prompt goes to
  the strong model when its score is ``>=`` the threshold; at the last (the maximum) when it is
  ``>``, so the sweep runs from 100 % strong calls down to 0 %. ``qcut`` refuses tied edges; we
  keep them (a router with tied scores, like the oracle, then repeats a point, which adds no
  area and changes no interpolation).
* **Curve point**: ``strong_pct`` = strong calls / prompts * 100, ``quality`` = mean quality of
  the routed answers (RouteLLM: ``sum(results) / len(results) * 100`` for GSM8K, the mean judge
  score for MT-Bench).
* **Random router** (:func:`average_curves`): RouteLLM evaluates it ``--random-iters 10`` times
  and averages with ``groupby("strong_percentage").mean()``: points are pooled by their exact
  strong-call percentage, which decile thresholds make identical across passes.
* **CPT(x %)** (:func:`summarize`): the % of strong calls needed to reach
  ``weak + x * (strong - weak)``, by ``np.interp(target, accuracy, strong_percentage)`` over the
  points sorted by strong percentage — accuracy is the *x* of the interpolation. Like RouteLLM we
  do not check that accuracy rises monotonically (``np.interp`` assumes it).
* **APGR**: ``(AUC - weak_AUC) / (strong_AUC - weak_AUC)``, each AUC a trapezoid integral over
  ``strong_percentage / 100``; the weak and strong AUCs integrate constant lines over the same
  points, so the ratio is the average share of the weak-to-strong gap the router recovers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from evals.router_eval.labels import RoutingLabels

DEFAULT_NUM_THRESHOLDS = 10
"""RouteLLM's ``--num-results``: the sweep uses the deciles of the scores (11 edges)."""

CPT_LEVELS: tuple[float, ...] = (0.2, 0.5, 0.8)
"""The quality levels RouteLLM reports CPT at (its "20% qual", "50% qual", "80% qual")."""


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """One threshold of a sweep: how many prompts went to the strong model, and what it earned."""

    threshold: float
    strong_pct: float
    """Share of prompts routed to the strong model, in percent."""
    quality: float
    """Mean quality of the routed answers, in the labels' unit."""


@dataclass(frozen=True, slots=True)
class RouterMetrics:
    """RouteLLM's summary of a quality-vs-strong-calls curve."""

    cpt: dict[float, float]
    """Per level in :data:`CPT_LEVELS`: % strong calls needed to recover that share of the gap."""
    auc: float
    """Area under quality over the strong-call fraction (0-1), in the labels' unit."""
    apgr: float
    """Average performance gap recovered: 0 is the weak model's level, 1 the strong model's."""

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["cpt"] = {f"{level:.0%}": value for level, value in self.cpt.items()}
        return data


def thresholds(scores: np.ndarray, num_thresholds: int = DEFAULT_NUM_THRESHOLDS) -> np.ndarray:
    """The bin edges of ``pd.qcut(scores, num_thresholds)``: quantiles at 0, 1/n, …, 1."""
    return np.quantile(scores, np.linspace(0, 1, num_thresholds + 1))


def threshold_sweep(
    scores: np.ndarray, labels: RoutingLabels, *, num_thresholds: int = DEFAULT_NUM_THRESHOLDS
) -> list[CurvePoint]:
    """Route at each threshold (``>=``, the last one ``>``) and record strong calls and quality.

    Args:
        scores: One score per prompt of ``labels``; higher means "send to the strong model"
            (RouteLLM's strong win rate).
        labels: The qualities each model earns on each prompt.
        num_thresholds: Number of quantile bins; the sweep has one more point than this.
    """
    scores = np.asarray(scores, dtype=float)
    if scores.shape != (len(labels),):
        raise ValueError(f"{scores.shape[0]} scores for {len(labels)} prompts")
    if not np.isfinite(scores).all():
        raise ValueError("router scores must be finite")
    edges = thresholds(scores, num_thresholds)
    points = []
    for index, threshold in enumerate(edges):
        last = index == len(edges) - 1
        to_strong = scores > threshold if last else scores >= threshold
        points.append(
            CurvePoint(
                threshold=float(threshold),
                strong_pct=float(to_strong.mean() * 100),
                quality=labels.quality(to_strong),
            )
        )
    return points


def average_curves(curves: Sequence[Sequence[CurvePoint]]) -> list[CurvePoint]:
    """Pool points by exact strong-call percentage and average them (RouteLLM's random router).

    Returns the pooled points sorted by strong-call percentage, as ``groupby`` does.
    """
    pooled: dict[float, list[CurvePoint]] = defaultdict(list)
    for curve in curves:
        for point in curve:
            pooled[point.strong_pct].append(point)
    return [
        CurvePoint(
            threshold=float(np.mean([p.threshold for p in group])),
            strong_pct=strong_pct,
            quality=float(np.mean([p.quality for p in group])),
        )
        for strong_pct, group in sorted(pooled.items())
    ]


def summarize(
    curve: Sequence[CurvePoint], *, weak_quality: float, strong_quality: float
) -> RouterMetrics:
    """CPT at :data:`CPT_LEVELS`, AUC and APGR of a curve, as ``generate_results`` computes them.

    Args:
        curve: The router's points, in any order (they are sorted by strong-call percentage).
        weak_quality: The weak model's quality on every prompt.
        strong_quality: The strong model's quality on every prompt.
    """
    if strong_quality == weak_quality:
        raise ValueError("the strong and weak models score the same: there is no gap to recover")
    ordered = sorted(curve, key=lambda point: point.strong_pct)
    strong_pct = np.array([point.strong_pct for point in ordered])
    quality = np.array([point.quality for point in ordered])
    gap = strong_quality - weak_quality
    cpt = {
        level: float(np.interp(weak_quality + level * gap, quality, strong_pct))
        for level in CPT_LEVELS
    }
    fraction = strong_pct / 100
    auc = float(np.trapezoid(quality, fraction))
    weak_auc = float(np.trapezoid(np.full_like(quality, weak_quality), fraction))
    strong_auc = float(np.trapezoid(np.full_like(quality, strong_quality), fraction))
    return RouterMetrics(cpt=cpt, auc=auc, apgr=(auc - weak_auc) / (strong_auc - weak_auc))
