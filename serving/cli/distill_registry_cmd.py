"""``understudy distill propose | evaluate | start | jobs``: from the lead's traffic to a
candidate that passed the evaluation gate (``understudy specialists promote`` serves it).

Registered on the ``distill`` sub-app next to ``build`` and ``train``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from distill.jobs import DistillJob, DistillJobStore
from distill.registry import Proposal, RegistryStore, SpecialistVersion
from orchestrator.transcripts import TranscriptStore
from serving.cli.output import console, err_console, log_to_stderr, print_json
from serving.runtime import distill_config
from serving.settings import Settings, get_settings
from serving.stores import open_database
from specialists.errors import DatasetError, ModelError

T = TypeVar("T")
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


async def _with_stores(
    settings: Settings, action: Callable[[TranscriptStore, RegistryStore], Awaitable[T]]
) -> T:
    store = TranscriptStore(await open_database(settings))
    try:
        return await action(store, RegistryStore(store.database))
    finally:
        await store.database.close()


# ----------------------------------------------------------------------------------- propose


def propose(
    min_runs: Annotated[
        int | None,
        typer.Option(
            min=2,
            help="Smallest task worth a specialist (UNDERSTUDY_DISTILL_MIN_CLUSTER_RUNS, 20).",
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            min=0.01,
            max=0.99,
            help="Clustering threshold, mean pairwise cosine "
            "(UNDERSTUDY_DISTILL_CLUSTER_THRESHOLD, calibrated 0.275).",
        ),
    ] = None,
    max_runs: Annotated[
        int | None,
        typer.Option(
            min=2,
            help="Newest lead-answered runs to cluster (UNDERSTUDY_DISTILL_PROPOSE_MAX_RUNS).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Propose new specialists for what the lead keeps answering itself.

    Embeds the user queries of runs the lead answered without a specialist, groups them into
    tasks, and proposes a specialist for every task with at least --min-runs runs that no
    specialist covers yet (it does not look like any specialist's traffic): a name, a description,
    example queries, the run count and the lead cost per month it would save at the rate
    observed. Each run replaces the open proposals of the last. With
    UNDERSTUDY_DISTILL_AUTO_DISTILL_RUNS set, proposals that large start a distillation job.
    Next: `understudy distill start --proposal ID` (or `distill build --proposal ID`).
    """
    from distill.pipeline import start_for_large_proposals
    from distill.proposals import propose as propose_specialists
    from orchestrator.prerouter import MiniLMEmbedder

    settings = get_settings()
    config = distill_config(settings)
    chosen: dict[str, Any] = {
        "cluster_threshold": threshold,
        "min_runs": min_runs,
        "max_runs": max_runs,
    }
    proposal_config = replace(
        config.proposals, **{name: value for name, value in chosen.items() if value is not None}
    )

    async def run(
        store: TranscriptStore, registry: RegistryStore
    ) -> tuple[list[Proposal], list[DistillJob]]:
        with err_console.status("reading transcripts…") as status:
            proposals = await propose_specialists(
                registry,
                store,
                config.catalog,
                embedder=MiniLMEmbedder(settings.router.embedding_model),
                config=proposal_config,
                on_progress=lambda scanned, kept: status.update(
                    f"scanned {scanned} runs, {kept} answered by the lead alone; clustering…"
                ),
            )
        started = await start_for_large_proposals(
            registry,
            DistillJobStore(registry.database),
            proposals,
            min_runs=proposal_config.auto_distill_runs,
        )
        return proposals, started

    proposals, started = asyncio.run(_with_stores(settings, run))
    if as_json:
        print_json(
            {
                "proposals": [{**asdict(p), "run_count": p.run_count} for p in proposals],
                "jobs": [asdict(job) for job in started],
            }
        )
        return
    if not proposals:
        console.print("no task the lead keeps answering is big enough to propose (yet)")
        return
    table = Table("id", "proposed specialist", "runs", "lead $/month", "nearest", "examples")
    for p in proposals:
        table.add_row(
            str(p.id),
            p.name,
            str(p.run_count),
            f"{p.monthly_savings_usd:,.2f}",
            f"{p.nearest_specialist} {p.nearest_score:.2f}" if p.nearest_specialist else "-",
            "\n".join(_clip(example) for example in p.examples[:3]),
        )
    console.print(table)
    for job in started:
        console.print(f"started distillation job {job.id} for {job.specialist}", style="dim")
    console.print("next: understudy distill start --proposal ID", style="dim")


# ---------------------------------------------------------------------------------- evaluate


def evaluate(
    specialist: Annotated[
        str, typer.Option("--specialist", "-s", help="The specialist the adapter is for.")
    ],
    adapter: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            help="Adapter directory (default: the specialist's newest `distill train` output).",
        ),
    ] = None,
    dataset: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            help="Dataset with the held-out splits (default: the one the adapter was trained on).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate a trained adapter against the current version and the lead; record the gate.

    The candidate and the specialist as served now answer the dataset's validation and test
    requests; answers are scored against the lead's (numeric match or ROUGE-L). The confidence
    threshold is calibrated on validation so that accepted answers agree with the lead at
    least UNDERSTUDY_DISTILL_TARGET_PRECISION of the time; the gate then checks that on test,
    and that the candidate does no worse than the current version. The adapter is registered
    as a candidate version with its figures; `understudy specialists promote` serves it.
    """
    from distill.catalog import known_catalog
    from distill.gate import HeldOut, evaluate_registered, register_adapter
    from distill.promotion import served_base
    from serving.runtime import build_backend

    settings = get_settings()
    config = distill_config(settings)
    adapter_dir = adapter or latest_adapter(config.paths.adapters, specialist)
    held_out = HeldOut.read(dataset or _trained_on(adapter_dir))

    async def run(store: TranscriptStore, registry: RegistryStore) -> SpecialistVersion:
        known = known_catalog(config.catalog, await registry.snapshot())
        version, current = await register_adapter(
            registry, known, served_base(config), specialist, adapter_dir, held_out
        )
        backend = build_backend(settings, log=log_to_stderr)
        try:
            with Progress(
                TextColumn(f"[bold]evaluating {version.label}[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err_console,
            ) as progress:
                task = progress.add_task("answers", total=held_out.size + len(held_out.test))
                return await evaluate_registered(
                    store,
                    registry,
                    backend,
                    version,
                    current,
                    held_out,
                    gate=config.gate,
                    slm_cost_per_token=config.slm_cost_per_token,
                    on_answer=lambda: progress.advance(task),
                )
        finally:
            await backend.aclose()

    version = asyncio.run(_with_stores(settings, run))
    if as_json:
        print_json(asdict(version))
        return
    _print_evaluation(version)


def latest_adapter(root: Path, name: str) -> Path:
    """The specialist's most recently finished training under ``root``.

    Raises:
        ModelError: None has finished (the message says how to train one).
    """
    finished = []
    for training in (root / name).glob("*/training.json"):
        try:
            finished.append(
                (json.loads(training.read_text(encoding="utf-8"))["finished_at"], training.parent)
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unfinished or foreign: not a candidate
    if not finished:
        raise ModelError(
            f"no trained adapter for {name!r} under {root / name}; train one with "
            f"`understudy distill train --specialist {name}` or pass --adapter"
        )
    return max(finished)[1]


def _trained_on(adapter: Path) -> Path:
    try:
        return Path(json.loads((adapter / "training.json").read_text(encoding="utf-8"))["dataset"])
    except (OSError, ValueError, KeyError, TypeError):
        raise DatasetError(
            f"{adapter} does not say which dataset it was trained on; pass --dataset"
        ) from None


def _print_evaluation(version: SpecialistVersion) -> None:
    metrics: dict[str, Any] = version.metrics
    test = metrics["test"]
    table = Table(
        f"{test['items']} test requests", "agrees with lead", "accepted", "precision", "$/request"
    )
    for label, figures in (
        ("candidate " + version.label, test["candidate"]),
        ("current", test["current"]),
    ):
        table.add_row(
            label,
            f"{figures['accuracy']:.1%}",
            f"{figures['coverage']:.1%}",
            "-" if figures["precision"] is None else f"{figures['precision']:.1%}",
            f"{figures['slm_cost_usd']:.6f}",
        )
    lead_cost = test["lead"]["cost_usd"]
    table.add_row("lead", "100%", "-", "-", "-" if lead_cost is None else f"{lead_cost:.6f}")
    console.print(table)
    threshold = "-" if version.threshold is None else f"{version.threshold:.3f}"
    console.print(
        f"threshold {threshold} (calibrated on {metrics['val']['items']} validation requests "
        f"for {metrics['target_precision']:.0%} precision; scorer {metrics['scorer']})",
        highlight=False,
    )
    if "savings" in test:
        console.print(f"cascade with the candidate: {test['savings']:.1%} cheaper than the lead")
    gate = metrics["gate"]
    if gate["passed"]:
        console.print(
            f"[green]gate passed[/]: understudy specialists promote "
            f"{version.specialist} --version {version.version}"
        )
    else:
        console.print("[red]gate failed[/]: " + "; ".join(gate["reasons"]), highlight=False)


# ------------------------------------------------------------------------------- start, jobs


def start(
    proposal: Annotated[
        int | None,
        typer.Option(
            "--proposal",
            "-p",
            help="Distil a new specialist from this proposal (see `distill propose`).",
        ),
    ] = None,
    specialist: Annotated[
        str | None,
        typer.Option(
            "--specialist",
            "-s",
            help="Distil a new version of this specialist from its transcripts.",
        ),
    ] = None,
) -> None:
    """Queue a distillation job: build, train, evaluate (and promote, if allowed).

    `understudy worker` runs it; `understudy distill jobs` follows it. Promotion happens only
    with UNDERSTUDY_DISTILL_AUTO_PROMOTE=true and a passed gate; otherwise run
    `understudy specialists promote` yourself.
    """
    from distill.pipeline import start_for_proposal, start_for_specialist

    if (proposal is None) == (specialist is None):
        raise typer.BadParameter("give --proposal or --specialist (one of them)")
    settings = get_settings()
    config = distill_config(settings)

    async def run(store: TranscriptStore, registry: RegistryStore) -> DistillJob:
        jobs = DistillJobStore(store.database)
        if proposal is not None:
            return await start_for_proposal(registry, jobs, proposal)
        return await start_for_specialist(registry, jobs, specialist or "", base=config.catalog)

    job = asyncio.run(_with_stores(settings, run))
    console.print(
        f"queued distillation job {job.id} for {job.specialist}; `understudy worker` runs it",
        highlight=False,
    )


def jobs(
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20,
    cancel: Annotated[
        str | None, typer.Option(help="Cancel this job (a running one stops at its next step).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List distillation jobs (or cancel one)."""
    settings = get_settings()

    async def run(store: TranscriptStore, _registry: RegistryStore) -> list[DistillJob]:
        queue = DistillJobStore(store.database)
        if cancel is not None:
            return [await queue.cancel(cancel)]
        return await queue.list(limit=limit)

    listed = asyncio.run(_with_stores(settings, run))
    if as_json:
        print_json([asdict(job) for job in listed])
        return
    if not listed:
        console.print("no distillation jobs; start one with `understudy distill start`")
        return
    table = Table("job", "specialist", "trigger", "status", "stage", "tries", "created", "error")
    for job in listed:
        table.add_row(
            job.id[:12],
            job.specialist,
            job.trigger,
            job.status,
            job.stage or "-",
            str(job.attempts),
            job.created_at.strftime("%Y-%m-%d %H:%M"),
            _clip(job.error or ""),
        )
    console.print(table)


def _clip(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
