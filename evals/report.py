"""An evaluation's files: the samples, each mode's results, a JSON summary, a Markdown report and
two plots (accuracy against cost, latency CDF).

Everything is derived from the :class:`~evals.harness.EvalOutcome`; the report states how each
figure was computed, so a reader can judge it without the code::

    OUT/
      samples.jsonl          the samples, in evaluation order (every mode answered these)
      results/<mode>.jsonl   one scored item per sample
      summary.json           configuration, figures per mode, the cascade threshold curve
      report.md              the comparison table and how it was measured
      accuracy_vs_cost.png   each mode a point (95 % interval); the cascade a curve
      latency_cdf.png        latency distribution per mode
      cache.jsonl            every clean result ever computed here (see evals.cache)
      transcripts.db         the runs' transcripts (when the CLI ran them)
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from evals.metrics import (
    BOOTSTRAP_RESAMPLES,
    CURVE_DERIVATION,
    CurvePoint,
    ModeMetrics,
    cascade_curve,
    mode_metrics,
)
from evals.records import ItemResult, item_to_json
from evals.scorers.routing import RoutingFigures, figures_from_details

if TYPE_CHECKING:
    from evals.harness import EvalOutcome

CURVE_THRESHOLDS = tuple(float(t) for t in np.round(np.linspace(0.0, 1.0, 101), 2))
REPORT_THRESHOLDS = tuple(round(0.1 * i, 1) for i in range(11))
"""The thresholds the Markdown table lists (the JSON and the plot have every hundredth)."""

MODE_DESCRIPTIONS = {
    "llm": "the lead alone",
    "router": "the lead with specialists as tools",
    "cascade": "specialist first, the lead when unsure",
    "slm": "the pre-router's specialist alone",
}


@dataclass(frozen=True)
class Summary:
    """The figures of an evaluation."""

    metrics: dict[str, ModeMetrics]
    curve: list[CurvePoint] | None
    substitute_mode: str | None
    """The mode whose results stand in, on the curve, for drafts the measured run accepted."""


def summarise(outcome: EvalOutcome) -> Summary:
    seed = outcome.plan.seed
    metrics = {mode: mode_metrics(mode, items, seed=seed) for mode, items in outcome.items.items()}
    substitute = next((m for m in ("router", "llm") if m in outcome.items), None)
    curve = None
    if "cascade" in outcome.items:
        substitutes = (
            {item.sample_id: item for item in outcome.items[substitute]} if substitute else {}
        )
        curve = cascade_curve(outcome.items["cascade"], substitutes, CURVE_THRESHOLDS)
    return Summary(metrics=metrics, curve=curve, substitute_mode=substitute)


def write_report(outcome: EvalOutcome, summary: Summary, out_dir: Path) -> list[Path]:
    """Write every report file into ``out_dir`` (replacing an earlier report); the paths written.

    Plots need matplotlib (``pip install 'understudy[eval]'``); without it the other files are
    still written and the report says so.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [_write_samples(outcome, out_dir / "samples.jsonl")]
    results_dir = out_dir / "results"
    results_dir.mkdir(exist_ok=True)
    for mode, items in outcome.items.items():
        written.append(_write_items(items, results_dir / f"{mode}.jsonl"))
    plots = _write_plots(outcome, summary, out_dir)
    written.extend(plots)
    summary_path = out_dir / "summary.json"
    summary_path.write_text(
        json.dumps(_summary_json(outcome, summary), indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    report_path = out_dir / "report.md"
    report_path.write_text(markdown(outcome, summary, plots=[p.name for p in plots]), "utf-8")
    return [*written, summary_path, report_path]


def _write_samples(outcome: EvalOutcome, path: Path) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for sample in outcome.samples:
            handle.write(json.dumps(dataclasses.asdict(sample), ensure_ascii=False) + "\n")
    return path


def _write_items(items: list[ItemResult], path: Path) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for item in items:
            handle.write(item_to_json(item) + "\n")
    return path


def _write_plots(outcome: EvalOutcome, summary: Summary, out_dir: Path) -> list[Path]:
    try:
        from evals import plots
    except ImportError:  # matplotlib is in the `eval` extra
        return []
    return [
        plots.accuracy_vs_cost(
            out_dir / "accuracy_vs_cost.png", summary.metrics, summary.curve, _labels(outcome)
        ),
        plots.latency_cdf(out_dir / "latency_cdf.png", outcome.items, _labels(outcome)),
    ]


def _summary_json(outcome: EvalOutcome, summary: Summary) -> dict[str, Any]:
    plan = outcome.plan
    return {
        "suite": plan.suite,
        "samples": len(outcome.samples),
        "sample_ids": [sample.id for sample in outcome.samples],
        "limit": plan.limit,
        "seed": plan.seed,
        "modes": [mode.value for mode in plan.modes],
        "concurrency": plan.concurrency,
        "config_hashes": outcome.config_hashes,
        "configuration": outcome.fingerprint,
        "items_run": outcome.ran,
        "items_from_cache": outcome.reused,
        "metrics": {mode: m.as_dict() for mode, m in summary.metrics.items()},
        "routing": {mode: figures.as_dict() for mode, figures in _routing(outcome).items()},
        "cascade_curve": None
        if summary.curve is None
        else {
            "derivation": _derivation(summary),
            "points": [dataclasses.asdict(p) for p in summary.curve],
        },
    }


# ----------------------------------------------------------------------------------- markdown


def markdown(outcome: EvalOutcome, summary: Summary, *, plots: list[str]) -> str:
    """The report: headline, comparison table, details, the cascade curve, method."""
    plan = outcome.plan
    metrics = summary.metrics
    labels = _labels(outcome)
    llm_cost = metrics["llm"].cost_usd if "llm" in metrics else None
    n = len(outcome.samples)
    lines = [
        f"# {plan.suite}: {n} samples, {len(metrics)} modes",
        "",
        _headline(outcome, summary),
        "",
        "| mode | accuracy [95 % CI] | cost | cost vs llm | latency p50 / p95 | without lead |",
        "|---|---|---|---|---|---|",
    ]
    for mode, m in metrics.items():
        ratio = f"{m.cost_usd / llm_cost:.2f}x" if llm_cost else "—"
        latency = f"{format_ms(m.latency_p50_ms)} / {format_ms(m.latency_p95_ms)}"
        lines.append(
            f"| {labels[mode]} | {format_accuracy(m)} | {format_usd(m.cost_usd)} | {ratio} | "
            f"{latency} | {format_share(m.without_lead_share)} |"
        )
    lines += [
        "",
        "| mode | lead tokens | SLM tokens | tool calls / item | escalated | failed | degraded |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, m in metrics.items():
        escalated = format_share(m.escalation_rate) if mode == "cascade" else "—"
        lines.append(
            f"| {mode} | {m.lead_tokens:,} | {m.slm_tokens:,} | {m.tool_calls_per_item:.2f} | "
            f"{escalated} | {m.failed} | {m.degraded} |"
        )
    lines += ["", *_routing_section(outcome), *_curve_section(summary)]
    lines += _method_section(outcome, summary)
    if plots:
        lines += ["", "## Plots", ""] + [f"![{name}]({name})" for name in plots]
    else:
        lines += ["", "Plots were not drawn: `pip install 'understudy[eval]'` adds matplotlib."]
    return "\n".join(lines) + "\n"


def _routing(outcome: EvalOutcome) -> dict[str, RoutingFigures]:
    """Per mode whose items carry pre-router decisions: precision, recall, confusion."""
    figures = {
        mode: figures_from_details([item.score_details for item in items])
        for mode, items in outcome.items.items()
    }
    return {mode: f for mode, f in figures.items() if f is not None}


def _routing_section(outcome: EvalOutcome) -> list[str]:
    lines: list[str] = []
    for mode, figures in _routing(outcome).items():
        lines += [f"## Routing ({mode}): precision per specialist, recall, confusion", "", "```"]
        lines += [*figures.lines(), "```", ""]
    return lines


def _headline(outcome: EvalOutcome, summary: Summary) -> str:
    parts = []
    for mode, m in summary.metrics.items():
        name = {
            "llm": f"{outcome.lead_model or 'the lead'} alone",
            "slm": "the small model alone",
        }.get(mode, mode)
        parts.append(f"{name} {m.accuracy * 100:.0f} % at {format_usd(m.cost_usd)}")
    return f"**{outcome.plan.suite}, {len(outcome.samples)} samples:** " + ", ".join(parts) + "."


def _curve_section(summary: Summary) -> list[str]:
    if "cascade" not in summary.metrics:
        return []
    lines = ["## Cascade: accuracy and cost over the confidence threshold", ""]
    if summary.curve is None:
        return [
            *lines,
            "Not computed: where the cascade accepted a draft, the curve needs the router or "
            "llm mode's answer to the same sample; add `router` to `--modes`.",
            "",
        ]
    by_threshold = {p.threshold: p for p in summary.curve}
    lines += [
        _derivation(summary),
        "",
        "| threshold | accuracy | cost | without lead |",
        "|---|---|---|---|",
    ]
    for threshold in REPORT_THRESHOLDS:
        point = by_threshold[threshold]
        lines.append(
            f"| {threshold:.1f} | {format_share(point.accuracy)} | {format_usd(point.cost_usd)} | "
            f"{format_share(point.without_lead_share)} |"
        )
    return [*lines, ""]


def _method_section(outcome: EvalOutcome, summary: Summary) -> list[str]:
    plan = outcome.plan
    price = outcome.lead_price
    lead_priced = (
        f"the lead ({outcome.lead_model}) at ${price.input_per_token * 1e6:.2f} / "
        f"${price.output_per_token * 1e6:.2f} per million input / output tokens"
        if price
        else f"the lead ({outcome.lead_model or 'none'}) unpriced (counted as $0)"
    )
    return [
        "## How this was measured",
        "",
        f"- Samples: a shuffle of the whole `{plan.suite}` split seeded with {plan.seed}, then "
        f"the first {len(outcome.samples)}; every mode answered the same samples (their ids are "
        "in `samples.jsonl` and `summary.json`).",
        "- Accuracy: the mean of the suite's per-item score (0-1); failed runs score 0. The "
        f"interval is a 95 % percentile bootstrap over items ({BOOTSTRAP_RESAMPLES:,} "
        f"resamples, seed {plan.seed}).",
        f"- Cost: totals over the {len(outcome.samples)} samples; {lead_priced}, specialist "
        f"tokens at ${outcome.slm_price_per_million:g} per million.",
        f"- Latency: wall time of each run, measured with {plan.concurrency} items in flight "
        "(queueing for the shared SLM included).",
        "- Without lead: answered with no lead token spent. Tool calls count every tool call in "
        "the run's transcript, the specialist calls the orchestrator itself makes (slm mode, the "
        "cascade's draft) included.",
        "- Configuration per mode (what it covers is in `summary.json`): "
        + ", ".join(f"{mode} `{h}`" for mode, h in outcome.config_hashes.items())
        + f"; {outcome.ran} items run now, {outcome.reused} reused from `cache.jsonl`.",
    ]


def _derivation(summary: Summary) -> str:
    return CURVE_DERIVATION.format(substitute=summary.substitute_mode)


def _labels(outcome: EvalOutcome) -> dict[str, str]:
    lead = outcome.lead_model
    labels = {mode: f"{mode} ({MODE_DESCRIPTIONS[mode]})" for mode in outcome.items}
    if "llm" in labels and lead:
        labels["llm"] = f"llm ({lead} alone)"
    return labels


def format_accuracy(m: ModeMetrics) -> str:
    return (
        f"{m.accuracy * 100:.0f} % [{m.accuracy_ci.low * 100:.0f}-{m.accuracy_ci.high * 100:.0f}]"
    )


def format_share(share: float) -> str:
    return f"{share * 100:.0f} %"


def format_usd(value: float) -> str:
    """Dollars with two significant digits below a cent (SLM costs are tiny)."""
    if value == 0:
        return "$0"
    if value >= 0.01:
        return f"${value:,.2f}"
    return f"${value:.{1 - math.floor(math.log10(value))}f}"


def format_ms(value: float) -> str:
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.1f} s"
