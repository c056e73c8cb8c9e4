"""Quality vs % strong calls, one line per router, as RouteLLM's ``generate_results`` plots it.

Built on :class:`matplotlib.figure.Figure` directly (no pyplot: no display, no global state).
Imported only when a plot is written: matplotlib is in the ``eval`` extra and slow to import.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from evals.router_eval.evaluate import Evaluation


def plot_curves(evaluation: Evaluation, path: Path) -> Path:
    """Each router's curve (APGR in its legend), and the weak and strong models as lines."""
    labels = evaluation.labels
    figure = Figure(figsize=(6, 5), layout="constrained")
    axes = figure.subplots()
    for result in evaluation.results:
        curve = sorted(result.curve, key=lambda point: point.strong_pct)
        axes.plot(
            [point.strong_pct for point in curve],
            [point.quality for point in curve],
            marker=".",
            label=f"{result.name} (APGR {result.metrics.apgr:.3f})",
        )
    axes.axhline(labels.weak_quality, color="grey", linestyle="--", label=labels.weak_model)
    axes.axhline(labels.strong_quality, color="red", linestyle="--", label=labels.strong_model)
    axes.set_xlabel("Strong model calls (%)")
    axes.set_ylabel(labels.unit)
    axes.set_title(f"Router performance ({labels.name}, {len(labels)} prompts)")
    axes.legend(fontsize="small", loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path
