"""``understudy distill``: the lead's transcripts → a dataset → a LoRA adapter for a specialist.

The CLI only assembles: settings become the distillation configuration, a target and a
transcript reader; :mod:`distill` does the work. Datasets land in
``$UNDERSTUDY_HOME/datasets/<name>/`` and adapters in ``$UNDERSTUDY_HOME/adapters/<name>/``, each
under a name derived from its content, so running a command again finds its earlier result (or
resumes it) instead of duplicating it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Collection
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from serving.cli import distill_registry_cmd
from serving.cli.output import console, err_console, log_to_stderr, print_json
from serving.runtime import distill_config
from serving.settings import Settings, get_settings

if TYPE_CHECKING:
    from distill.config import DistillConfig
    from distill.dataset import DatasetCard, DistillTarget
    from distill.training import StepReport, TrainPlan
    from distill.transcripts import Transcript
    from specialists.catalog import Specialist

app = typer.Typer(
    help="Distil the lead's verified answers into specialists: propose tasks worth one, build "
    "a dataset from transcripts, train a LoRA adapter, evaluate it against the gate; or queue "
    "all of it as a job (`distill start`) for `understudy worker`.",
    no_args_is_help=True,
)

SpecialistOption = Annotated[
    str,
    typer.Option("--specialist", "-s", help="The specialist to teach (a catalog name, e.g. math)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


class DeviceChoice(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


# ------------------------------------------------------------------------------------- build


@app.command("build")
def build(
    specialist: Annotated[
        str | None,
        typer.Option(
            "--specialist", "-s", help="Teach this specialist (a catalog name, e.g. math)."
        ),
    ] = None,
    proposal: Annotated[
        int | None,
        typer.Option(
            help="Or teach the specialist a proposal describes, from its runs "
            "(see `distill propose`)."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            help="Dataset directory. Default: $UNDERSTUDY_HOME/datasets/<name>/<hash>; an "
            "existing directory is never overwritten.",
        ),
    ] = None,
    max_runs: Annotated[
        int | None,
        typer.Option(
            min=1, help="Most runs to scan, newest first (UNDERSTUDY_DISTILL_MAX_TRANSCRIPTS)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Turn transcripts into a chat-format SFT dataset for a specialist.

    With --specialist, uses every run that consulted it: the lead's answer after it rejected
    or checked the specialist's draft (its correction or verification), and the specialist's
    own answers that users confirmed with positive feedback. With --proposal, the runs of the
    proposal's cluster: the lead's answers to the users' requests. Left out: failed or
    degraded runs, negative feedback, answers the validator rejects, over-long examples,
    duplicates and near-duplicates. Emails, phone numbers and keys are replaced by
    placeholders. The split (80/10/10 by default) is by hash, with similar requests on the
    same side. Writes train/val/test.jsonl, card.json and README.md.
    """
    if (specialist is None) == (proposal is None):
        raise typer.BadParameter("give either --specialist NAME or --proposal ID")
    settings = get_settings()
    config = distill_config(settings)
    if specialist is not None:
        target = _specialist_target(_specialist(settings, config, specialist))
        transcripts = _read(settings, config, max_runs, specialist=target.name)
    else:
        assert proposal is not None  # exactly one of the two was given
        target = asyncio.run(_proposal_target(settings, proposal))
        transcripts = _read(settings, config, max_runs, run_ids=target.run_ids)
    _save_and_report(config, target, transcripts, out, as_json=as_json)


def _specialist_target(specialist: Specialist) -> DistillTarget:
    from distill.dataset import DistillTarget

    return DistillTarget(specialist.name, specialist.system_prompt, specialist.validator)


async def _proposal_target(settings: Settings, proposal_id: int) -> DistillTarget:
    """The specialist a proposal describes, on its runs. Building accepts the proposal (as
    `distill start` does): the specialist is registered, so `train` and `evaluate` know it."""
    from distill.dataset import DistillTarget
    from distill.proposals import accept
    from distill.registry import RegistryStore
    from orchestrator.transcripts import TranscriptStore
    from serving.stores import open_database

    store = TranscriptStore(await open_database(settings))
    try:
        registry = RegistryStore(store.database)
        proposal = await registry.get_proposal(proposal_id)
        definition = await accept(registry, proposal_id)
    finally:
        await store.database.close()
    return DistillTarget(
        definition.name,
        definition.system_prompt,
        definition.validator,
        run_ids=frozenset(proposal.run_ids),
    )


def _read(
    settings: Settings,
    config: DistillConfig,
    max_runs: int | None,
    *,
    specialist: str | None = None,
    run_ids: Collection[str] | None = None,
) -> list[Transcript]:
    """Transcripts from the store (a specialist's runs, or chosen ones), with a live count."""
    from distill.catalog import known_catalog
    from distill.registry import RegistryStore
    from distill.source import read_transcripts
    from orchestrator.transcripts import TranscriptStore
    from serving.stores import open_database

    async def read() -> list[Transcript]:
        store = TranscriptStore(await open_database(settings))
        try:
            with Progress(
                SpinnerColumn(), TextColumn("{task.description}"), console=err_console
            ) as progress:
                task = progress.add_task("reading transcripts")

                def report(scanned: int, selected: int) -> None:
                    progress.update(
                        task, description=f"scanned {scanned} runs, {selected} selected"
                    )

                # the registry's specialists too, being trained or served: their tool calls
                # must map to them, as in distillation jobs
                snapshot = await RegistryStore(store.database).snapshot()
                return await read_transcripts(
                    store,
                    known_catalog(config.catalog, snapshot),
                    max_runs=max_runs or config.max_transcripts,
                    on_progress=report,
                    specialist=specialist,
                    run_ids=run_ids,
                )
        finally:
            await store.database.close()

    return asyncio.run(read())


def _save_and_report(
    config: DistillConfig,
    target: DistillTarget,
    transcripts: list[Transcript],
    out: Path | None,
    *,
    as_json: bool,
) -> None:
    from distill.dataset import build_dataset, dataset_dir, save_dataset

    built = build_dataset(transcripts, target, config.dataset)
    directory = save_dataset(built, out or dataset_dir(config.paths.datasets, built.card))
    if as_json:
        print_json({"path": str(directory), **json.loads(built.card.to_json())})
        return
    _print_card(built.card, directory)


def _print_card(card: DatasetCard, directory: Path) -> None:
    table = Table("split", "examples", "sha256")
    for name, split in card.splits.items():
        table.add_row(name, str(split.examples), split.sha256[:16])
    console.print(table)
    left_out = ", ".join(f"{r} {n}" for r, n in card.rejected.items() if n) or "none"
    pii = ", ".join(f"{kind} {n}" for kind, n in card.pii_replaced.items()) or "none"
    console.print(
        f"{card.examples} examples from {card.transcripts_read} transcripts · left out: "
        f"{left_out} · personal data replaced: {pii}",
        highlight=False,
    )
    console.print(f"dataset {card.sha256[:12]} at {directory}", highlight=False)
    console.print(f"next: understudy distill train --specialist {card.name}", style="dim")


# ------------------------------------------------------------------------------------- train


@app.command("train")
def train(
    specialist: SpecialistOption,
    dataset: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            help="Dataset directory. Default: the newest `distill build` of this specialist.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            help="Adapter directory. Default: $UNDERSTUDY_HOME/adapters/<name>/<run id>, one per "
            "dataset, base and settings, so running the same command again resumes it.",
        ),
    ] = None,
    rank: Annotated[
        int | None,
        typer.Option(min=1, help="LoRA rank, at most UNDERSTUDY_SLM_MAX_LORA_RANK."),
    ] = None,
    alpha: Annotated[int | None, typer.Option(min=1, help="LoRA alpha (scale = alpha/rank).")] = (
        None
    ),
    epochs: Annotated[int | None, typer.Option(min=1, help="Passes over the train split.")] = None,
    learning_rate: Annotated[
        float | None, typer.Option("--lr", min=0, help="Peak learning rate.")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Examples per step.")] = None,
    device: Annotated[
        DeviceChoice | None,
        typer.Option(help="auto: CUDA when present (UNDERSTUDY_DISTILL_DEVICE)."),
    ] = None,
    from_adapter: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            help="Continue training this adapter (e.g. the specialist's current one) instead "
            "of starting a new one; it must fit the base model.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Train a LoRA adapter for a specialist on a distillation dataset (CPU or CUDA).

    Loss is on the assistant turns only. Defaults come from UNDERSTUDY_DISTILL_* settings.
    A checkpoint is written every UNDERSTUDY_DISTILL_CHECKPOINT_EVERY steps; after an
    interruption, the same command resumes from the latest one and ends with the same adapter.
    """
    from distill.dataset import latest_dataset
    from distill.training import adapter_dir, check_rank, train_lora

    settings = get_settings()
    config = distill_config(settings)
    chosen = _specialist(settings, config, specialist)
    options: dict[str, Any] = {
        "rank": rank,
        "alpha": alpha,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "device": device.value if device else None,
    }
    hyperparameters = replace(
        config.train, **{name: value for name, value in options.items() if value is not None}
    )
    check_rank(hyperparameters.rank, config.limits.max_rank)  # before anything slow
    dataset_dir = dataset or latest_dataset(config.paths.datasets, chosen.name)
    base_ref, base_dir = _base_model(settings, chosen)
    out_dir = out or adapter_dir(
        config.paths.adapters, chosen.name, dataset_dir, base_dir, hyperparameters, from_adapter
    )
    observer = _ProgressObserver()
    try:
        with observer:
            result = train_lora(
                dataset_dir,
                base_dir,
                out_dir,
                hyperparameters,
                config.limits,
                base_ref=base_ref,
                init_adapter=from_adapter,
                observer=observer,
            )
    except KeyboardInterrupt:
        err_console.print(
            f"interrupted after step {observer.last_step}; run the same command again to resume "
            "from the latest checkpoint",
            highlight=False,
        )
        sys.exit(130)
    metadata = result.metadata
    if as_json:
        print_json({"path": str(result.adapter_dir), **metadata})
        return
    state = "already trained" if result.already_trained else "trained"
    val = metadata["val_loss"]
    console.print(
        f"{chosen.name}: {state} · {metadata['examples']} examples · {metadata['steps']} steps · "
        f"train loss {metadata['train_loss']:.3f}"
        + (f" · val loss {val:.3f}" if val is not None else "")
        + f" · rank {metadata['rank']}",
        highlight=False,
    )
    console.print(f"adapter at {result.adapter_dir}", highlight=False)
    console.print(
        f'try it: UNDERSTUDY_SPECIALISTS=\'{{"{chosen.name}": {{"adapter": '
        f'"{result.adapter_dir}"}}}}\' understudy ask "…" --specialist {chosen.name}',
        style="dim",
        markup=False,
        highlight=False,
    )


def _base_model(settings: Settings, specialist: Specialist) -> tuple[str, Path]:
    """The specialist's base model: its own, else the shared base (pulled if it is missing)."""
    from serving.runtime import model_store, resolve_base_model

    if specialist.base_model is None or specialist.base_model == settings.slm.base_model:
        return settings.slm.base_model, resolve_base_model(settings, log=log_to_stderr)
    return specialist.base_model, model_store(settings).resolve(specialist.base_model)


class _ProgressObserver:
    """A rich progress bar over training steps, with a smoothed loss and throughput."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("[bold]training[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[speed]} tok/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err_console,
        )
        self.task = self.progress.add_task("train", total=None, loss="-", speed="-")
        self.smoothed: float | None = None
        self.last_step = 0

    def __enter__(self) -> _ProgressObserver:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def started(self, plan: TrainPlan) -> None:
        self.last_step = plan.start_step
        self.progress.update(self.task, total=plan.total_steps, completed=plan.start_step)
        resumed = f", resuming at step {plan.start_step}" if plan.start_step else ""
        skipped = f" ({plan.skipped_too_long} too long, skipped)" if plan.skipped_too_long else ""
        self.progress.console.print(
            f"{plan.examples} examples{skipped} · {plan.total_steps} steps on {plan.device}"
            f"{resumed}",
            highlight=False,
        )

    def step(self, report: StepReport) -> None:
        self.last_step = report.step
        weight = 0.9 if self.smoothed is not None else 0.0
        self.smoothed = weight * (self.smoothed or 0.0) + (1 - weight) * report.loss
        self.progress.update(
            self.task,
            completed=report.step,
            loss=f"{self.smoothed:.3f}",
            speed=f"{report.tokens_per_s:.0f}",
        )
        if report.checkpoint is not None:
            self.progress.console.print(f"checkpoint {report.checkpoint}", style="dim")


# ------------------------------------------------------------------------------------ shared


def _specialist(settings: Settings, config: DistillConfig, name: str) -> Specialist:
    """The catalog entry (with settings' overrides) or a registry specialist (proposed and
    accepted, served or still being trained); unknown names list the known ones."""
    from distill.catalog import known_specialist
    from serving.stores import run_with_database

    return run_with_database(
        settings, lambda database: known_specialist(database, config.catalog, name)
    )


# The registry's side of distillation (proposals, the evaluation gate, jobs) lives in its own
# module; these lines put its commands on this sub-app.
app.command("propose")(distill_registry_cmd.propose)
app.command("evaluate")(distill_registry_cmd.evaluate)
app.command("start")(distill_registry_cmd.start)
app.command("jobs")(distill_registry_cmd.jobs)
