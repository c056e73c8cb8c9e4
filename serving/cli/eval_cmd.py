"""``understudy eval run``: the modes compared on a benchmark suite, on identical samples.

The CLI only assembles: settings become an orchestrator (with a transcript store of the
evaluation's own, so benchmark runs never mix with production transcripts or feed distillation),
a data source and a judge; :mod:`evals.harness` runs the items and :mod:`evals.report` writes the
files.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from orchestrator.modes import Mode
from serving.cli import eval_router_cmd
from serving.cli.ask_cmd import BackendChoice
from serving.cli.output import console, err_console, log_to_stderr
from serving.settings import Settings, get_settings
from specialists.errors import ConfigurationError

if TYPE_CHECKING:
    from evals.harness import EvalOutcome, EvalPlan, OnItem
    from evals.judge import Judge
    from evals.records import ItemResult
    from evals.report import Summary
    from evals.samples import Sample
    from evals.suites import Suite
    from specialists.catalog import Catalog

TRANSCRIPTS_FILE = "transcripts.db"
DEFAULT_LIMIT = 100

app = typer.Typer(
    help="Evaluate the modes on benchmark suites: accuracy, cost, latency, on the same samples.",
    no_args_is_help=True,
)


app.command("router")(eval_router_cmd.router)


@app.command("run")
def run(
    suite: Annotated[
        str,
        typer.Option(
            help="gsm8k, math500, humaneval, mbpp, email, mt_bench or routing "
            "(mt_bench needs UNDERSTUDY_EVAL_JUDGE_MODEL)."
        ),
    ],
    modes: Annotated[
        str,
        typer.Option(
            help="Comma-separated modes to compare: llm (the lead alone), router (the lead with "
            "specialists as tools), cascade (specialist first, lead when unsure), slm (the "
            "specialist alone)."
        ),
    ] = "llm,router,cascade,slm",
    limit: Annotated[
        int,
        typer.Option(
            min=1,
            help="Samples to evaluate: the first N of a seeded shuffle of the split (a larger N "
            "extends the same list, so earlier results are reused).",
        ),
    ] = DEFAULT_LIMIT,
    seed: Annotated[
        int, typer.Option(help="Picks the samples and seeds the bootstrap intervals.")
    ] = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            help="Output directory (report, results, cache). Default: "
            "$UNDERSTUDY_HOME/evals/<suite>. Rerunning into the same directory resumes.",
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="Items in flight at once (UNDERSTUDY_EVAL_CONCURRENCY)."),
    ] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(min=1, max=4096, help="Cap on every specialist's answer tokens."),
    ] = None,
    backend: Annotated[
        BackendChoice | None, typer.Option(help="Override UNDERSTUDY_SLM_BACKEND for this run.")
    ] = None,
) -> None:
    """Run SUITE's samples through each mode, score them, and write a report.

    Results are cached in the output directory by sample, mode and a hash of the configuration
    (lead, specialists, thresholds, prompts, prices): an interrupted run resumes where it
    stopped, and a repeated one costs nothing. Runs that failed are retried.

    Writes samples.jsonl, results/<mode>.jsonl, summary.json, report.md, accuracy_vs_cost.png
    and latency_cdf.png.

    Examples:

      understudy eval run --suite gsm8k --limit 150

      understudy eval run --suite humaneval --modes cascade,slm --limit 50 --out reports/he
    """
    from evals.data import DataSource
    from evals.harness import EvalPlan, check_ready, select_samples
    from evals.report import summarise, write_report
    from evals.suites import get_suite
    from serving.orchestration import lead_config  # loads the agents SDK: only when asked

    settings = get_settings()
    chosen = get_suite(suite)
    plan = EvalPlan(
        suite=chosen.name,
        modes=_parse_modes(modes),
        limit=limit,
        seed=seed,
        concurrency=concurrency or settings.eval.concurrency,
    )
    has_judge = bool(settings.eval.judge_model or settings.eval.judge_base_url)
    check_ready(plan, chosen, lead=lead_config(settings), has_judge=has_judge)
    out_dir = (out or settings.home / "evals" / chosen.name).expanduser().resolve()
    catalog = settings.catalog()
    if max_tokens:
        catalog = catalog.with_overrides(
            {name: {"generation": {"max_tokens": max_tokens}} for name in catalog.names}
        )
    samples = select_samples(
        chosen, DataSource(data_dir=settings.data_dir), limit=plan.limit, seed=plan.seed
    )
    try:
        outcome = asyncio.run(
            _evaluate(settings, catalog, chosen, samples, plan, out_dir, backend=backend)
        )
    except KeyboardInterrupt:
        err_console.print(
            f"interrupted: finished items are kept in {out_dir}; run the same command to resume",
            style="yellow",
        )
        raise typer.Exit(130) from None
    summary = summarise(outcome)
    write_report(outcome, summary, out_dir)
    _print_table(summary)
    console.print(
        f"[dim]{outcome.ran} items run, {outcome.reused} from the cache · "
        f"report: {out_dir / 'report.md'}[/]",
        highlight=False,
    )


def _parse_modes(text: str) -> tuple[Mode, ...]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    valid = ", ".join(m.value for m in Mode)
    unknown = [name for name in names if name not in set(Mode)]
    if unknown or not names:
        raise ConfigurationError(
            f"unknown mode {', '.join(unknown) or '(none given)'}; modes: {valid}"
        )
    return tuple(Mode(name) for name in names)


async def _evaluate(
    settings: Settings,
    catalog: Catalog,
    suite: Suite,
    samples: list[Sample],
    plan: EvalPlan,
    out_dir: Path,
    *,
    backend: BackendChoice | None,
) -> EvalOutcome:
    from database import Database
    from evals.harness import evaluate
    from orchestrator.transcripts import TranscriptStore
    from serving.orchestration import build_orchestrator
    from serving.runtime import build_backend

    async with AsyncExitStack() as resources:
        judge = _judge(settings)
        if judge is not None:
            resources.push_async_callback(judge.aclose)
        # The evaluation's own database, not the production one: test sets never reach
        # distillation.
        database = await Database.open(f"sqlite+aiosqlite:///{out_dir / TRANSCRIPTS_FILE}")
        resources.push_async_callback(database.close)
        store = TranscriptStore(database)
        slm = build_backend(settings, backend=backend.value if backend else None, log=log_to_stderr)
        resources.push_async_callback(slm.aclose)
        orchestrator = build_orchestrator(settings, store=store, backend=slm, catalog=catalog)
        with _progress_bars(plan, len(samples)) as on_item:
            return await evaluate(
                orchestrator,
                suite,
                samples,
                plan,
                out_dir,
                slm_base=settings.slm.base_model,
                judge=judge,
                judge_model=judge.label if judge else None,
                on_item=on_item,
            )


def _judge(settings: Settings) -> Judge | None:
    """The configured judge, if any (``mt_bench`` needs one; ``email`` uses one when given)."""
    config = settings.eval
    if not (config.judge_model or config.judge_base_url):
        return None
    from evals.judge import build_judge

    return build_judge(
        model=config.judge_model,
        base_url=config.judge_base_url,
        api_key=config.judge_api_key.get_secret_value() if config.judge_api_key else None,
    )


@contextmanager
def _progress_bars(plan: EvalPlan, samples: int) -> Iterator[OnItem]:
    """One bar per mode on stderr; yields the harness's ``on_item`` callback that advances them."""
    bars = Progress(
        TextColumn("{task.fields[mode]:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[dim]{task.fields[cached]} cached[/]"),
        TimeElapsedColumn(),
        console=err_console,
    )
    tasks = {m.value: bars.add_task("", total=samples, mode=m.value, cached=0) for m in plan.modes}
    cached = dict.fromkeys(tasks, 0)

    def advance(item: ItemResult, reused: bool) -> None:
        cached[item.mode] += reused
        bars.update(tasks[item.mode], advance=1, cached=cached[item.mode])

    with bars:
        yield advance


def _print_table(summary: Summary) -> None:
    from evals.report import format_accuracy, format_ms, format_share, format_usd

    table = Table("mode", "accuracy [95 % CI]", "cost", "latency p50 / p95", "without lead")
    for mode, m in summary.metrics.items():
        table.add_row(
            mode,
            format_accuracy(m),
            format_usd(m.cost_usd),
            f"{format_ms(m.latency_p50_ms)} / {format_ms(m.latency_p95_ms)}",
            format_share(m.without_lead_share),
        )
    console.print(table)
