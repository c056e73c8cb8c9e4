"""The report's two plots, drawn with matplotlib.

Figures are built with :class:`matplotlib.figure.Figure` directly, not pyplot: no display, no
global backend state, nothing left open. Imported only when a report is written: matplotlib is in
the ``eval`` extra and slow to import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure

from evals.metrics import CurvePoint, ModeMetrics
from evals.records import ItemResult

CURVE_LABELS = (0.5, 0.7, 0.9)
"""Thresholds marked on the cascade curve."""


def accuracy_vs_cost(
    path: Path,
    metrics: Mapping[str, ModeMetrics],
    curve: Sequence[CurvePoint] | None,
    labels: Mapping[str, str],
) -> Path:
    """Each mode a point with its 95 % interval; the cascade also a curve over its threshold.

    Costs span orders of magnitude (a specialist is ~1000x cheaper than a frontier lead), so the
    cost axis is logarithmic whenever every cost is positive.
    """
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axes = figure.subplots()
    if curve:
        axes.plot(
            [p.cost_usd for p in curve],
            [p.accuracy * 100 for p in curve],
            color="tab:gray",
            linewidth=1,
            label="cascade over its threshold (derived)",
            zorder=1,
        )
        for point in curve:
            if point.threshold in CURVE_LABELS:
                axes.annotate(
                    f"t={point.threshold:g}",
                    (point.cost_usd, point.accuracy * 100),
                    fontsize=7,
                    color="tab:gray",
                    xytext=(3, -9),
                    textcoords="offset points",
                )
    for mode, m in metrics.items():
        low, high = m.accuracy_ci.low * 100, m.accuracy_ci.high * 100
        axes.errorbar(
            m.cost_usd,
            m.accuracy * 100,
            yerr=[[m.accuracy * 100 - low], [high - m.accuracy * 100]],
            fmt="o",
            capsize=3,
            label=labels.get(mode, mode),
            zorder=2,
        )
    costs = [m.cost_usd for m in metrics.values()] + [p.cost_usd for p in curve or ()]
    if costs and min(costs) > 0:
        axes.set_xscale("log")
    axes.set_xlabel(f"total cost (USD, {next(iter(metrics.values())).items} samples)")
    axes.set_ylabel("accuracy (%)")
    axes.set_ylim(-2, 102)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    figure.savefig(path, dpi=120)
    return path


def latency_cdf(
    path: Path, items: Mapping[str, Sequence[ItemResult]], labels: Mapping[str, str]
) -> Path:
    """The share of items answered within each latency, per mode (log time axis)."""
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axes = figure.subplots()
    for mode, mode_items in items.items():
        seconds = sorted(max(item.latency_ms, 1e-3) / 1000 for item in mode_items)
        shares = [i / len(seconds) * 100 for i in range(len(seconds) + 1)]
        seconds = [seconds[0], *seconds]  # the curve rises from 0 at the fastest item
        axes.step(seconds, shares, where="post", label=labels.get(mode, mode))
    axes.set_xscale("log")
    axes.set_xlabel("latency (s)")
    axes.set_ylabel("items answered (%)")
    axes.set_ylim(0, 101)
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize=8, loc="best")
    figure.savefig(path, dpi=120)
    return path
