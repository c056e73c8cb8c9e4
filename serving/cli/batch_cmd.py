"""``understudy batch``: run OpenAI Batch-format files through the orchestrator, durably.

``run`` does it all in this process; ``submit`` queues a job for ``understudy worker`` processes
(on any number of machines sharing PostgreSQL). Jobs live in the database, so ``resume`` picks
up a job whose process died, and ``status``, ``results`` and ``cancel`` work from anywhere.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import suppress
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from orchestrator.modes import Mode
from serving.batch.store import BatchJob, BatchProgress, BatchStore
from serving.cli.output import console, err_console, log_to_stderr, print_json
from serving.keys import KeyStore
from serving.settings import Settings, get_settings
from specialists.errors import UnderstudyError

if TYPE_CHECKING:
    from serving.batch.validation import LoadReport

app = typer.Typer(
    help=(
        "Run files of chat requests (OpenAI Batch format) through Understudy: durable, resumable, "
        "spread over any number of `understudy worker` processes."
    ),
    no_args_is_help=True,
)

T = TypeVar("T")
PROGRESS_REFRESH_S = 0.5

InputArg = Annotated[
    Path,
    typer.Argument(
        metavar="INPUT",
        exists=True,
        dir_okay=False,
        readable=True,
        help="JSONL in OpenAI's Batch format: one {custom_id, method, url, body} per line.",
    ),
]
JobArg = Annotated[
    str, typer.Argument(metavar="JOB", help="The job id (batch_…), from `batch list`.")
]
ModeOpt = Annotated[
    Mode | None,
    typer.Option(
        help="Mode of requests whose model is not an Understudy model (e.g. gpt-4o-mini); "
        "`understudy-llm`, `understudy-math`, … choose their own. Default: batch.mode (cascade)."
    ),
]
ConcurrencyOpt = Annotated[
    int | None,
    typer.Option(min=1, max=4096, help="Requests at once (default: batch.concurrency, 64)."),
]
OutputOpt = Annotated[
    Path | None,
    typer.Option(
        "--output", "-o", help="Output file (default: INPUT.output.jsonl / JOB.output.jsonl)."
    ),
]
ErrorsOpt = Annotated[
    Path | None,
    typer.Option(help="Error file (default: next to the output, ….errors.jsonl)."),
]
SkipInvalidOpt = Annotated[
    bool,
    typer.Option(
        "--skip-invalid",
        help="Run the valid lines and send invalid ones to the error file (default: nothing runs "
        "while any line is invalid).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


@app.command("run")
def run(
    input_path: InputArg,
    mode: ModeOpt = None,
    concurrency: ConcurrencyOpt = None,
    output: OutputOpt = None,
    errors: ErrorsOpt = None,
    skip_invalid: SkipInvalidOpt = False,
) -> None:
    """Check INPUT and run it here, with a progress bar; write the output and error files.

    Nothing runs while a line is invalid (every bad line is named), unless --skip-invalid.
    Results are committed to the database as they come: if this process dies, `understudy
    batch resume JOB` finishes the job without running anything twice. The summary gives
    tokens, cost, the share answered without the lead, and savings against `llm` mode.

    Example:

      understudy batch run requests.jsonl --mode cascade --concurrency 64 --output out.jsonl
    """
    settings = get_settings()
    output = output or input_path.with_suffix(".output.jsonl")
    job = _run_async(_submit(settings, input_path, mode, skip_invalid))
    err_console.print(
        f"[bold]{job.id}[/]: {job.total} requests; if this process stops, "
        f"`understudy batch resume {job.id} --output {output}` finishes it",
        highlight=False,
    )
    _run_async(_work_and_report(settings, job.id, concurrency, output, errors), job=job.id)


@app.command("submit")
def submit(
    input_path: InputArg,
    mode: ModeOpt = None,
    skip_invalid: SkipInvalidOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Check INPUT and queue it for `understudy worker` processes; prints the job id.

    Follow it with `batch status JOB --watch`, collect it with `batch results JOB`.
    """
    settings = get_settings()
    job = _run_async(_submit(settings, input_path, mode, skip_invalid))
    if as_json:
        print_json(_job_dict(job))
        return
    console.print(job.id, highlight=False)
    err_console.print(
        f"[dim]{job.total} requests queued; `understudy worker` runs them "
        f"(or `understudy batch resume {job.id}` in this shell)[/]",
        highlight=False,
    )


@app.command("resume")
def resume(
    job_id: JobArg,
    concurrency: ConcurrencyOpt = None,
    output: OutputOpt = None,
    errors: ErrorsOpt = None,
) -> None:
    """Finish a job in this process (after a crash, or one queued with `submit`).

    Requests already answered are not run again; requests held by a worker that died are
    taken over once their lease expires (batch.lease_s). Then the files and the summary are
    written, as `batch run` does.
    """
    settings = get_settings()
    output = output or Path(f"{job_id}.output.jsonl")
    _run_async(_work_and_report(settings, job_id, concurrency, output, errors), job=job_id)


@app.command("status")
def status(
    job_id: JobArg,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Show a progress bar until it finishes.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show a job's status, progress, tokens and cost."""

    async def show(store: BatchStore) -> tuple[BatchJob, BatchProgress]:
        if watch:
            await _show_progress(store, job_id, until=asyncio.Event())
        return await store.get_job(job_id), await store.progress(job_id)

    job, progress = _run_async(_with_store(get_settings(), show))
    if as_json:
        print_json({**_job_dict(job), "progress": _progress_dict(progress)})
        return
    _print_job(job, progress)


@app.command("list")
def list_jobs(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 20,
    owner: Annotated[
        str | None,
        typer.Option(
            metavar="KEY_ID_OR_PREFIX",
            help="Only the jobs made through the API with this key (default: every job).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List jobs, newest first: every key's (this is the operator's view) unless --owner."""

    async def listed(store: BatchStore) -> list[BatchJob]:
        owned_by = None if owner is None else (await KeyStore(store.database).find(owner)).id
        return await store.list_jobs(limit=limit, owned_by=owned_by)

    jobs = _run_async(_with_store(get_settings(), listed))
    if as_json:
        for job in jobs:
            print_json(_job_dict(job), compact=True)
        return
    table = Table("job", "created", "status", "mode", "requests", "input", "owner key")
    for job in jobs:
        table.add_row(
            job.id,
            job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            job.status,
            job.mode,
            str(job.total),
            job.input_name,
            job.owner_key_id or "",
        )
    console.print(table)


@app.command("cancel")
def cancel(job_id: JobArg) -> None:
    """Cancel a job: requests not started yet are not run.

    They go to the error file as `batch_cancelled`; running ones finish, and answers already
    made stay in the output file.
    """
    job = _run_async(_with_store(get_settings(), lambda store: store.cancel(job_id)))
    console.print(f"{job.id}: {job.status}", highlight=False)


@app.command("results")
def results(job_id: JobArg, output: OutputOpt = None, errors: ErrorsOpt = None) -> None:
    """Write a job's output and error files (what is done so far, if it is still running)."""
    settings = get_settings()
    output = output or Path(f"{job_id}.output.jsonl")

    async def write(store: BatchStore) -> tuple[BatchJob, BatchProgress]:
        job = await store.get_job(job_id)
        progress = await store.progress(job_id)
        await _write_files(store, job, progress, output, errors)
        return job, progress

    job, progress = _run_async(_with_store(settings, write))
    if not job.finished:
        err_console.print(
            f"[yellow]{job.id} is {job.status}: {progress.done} of {progress.total} done[/]",
            highlight=False,
        )


# ------------------------------------------------------------------------------------ work


async def _submit(
    settings: Settings, input_path: Path, mode: Mode | None, skip_invalid: bool
) -> BatchJob:
    """Load and check INPUT into a new job; print every bad line and fail if it did not start.

    Raises:
        InvalidBatchInput: A line is invalid and ``skip_invalid`` is off; nothing ran.
    """
    from distill.catalog import served_catalog
    from serving.batch.store import WorkerInfo
    from serving.batch.validation import InvalidBatchInput, load_requests
    from serving.protocol import served_models

    job_mode = mode or Mode(settings.batch.mode)
    _require_lead_for(settings, job_mode)

    async def load(store: BatchStore) -> LoadReport:
        validator = WorkerInfo.this_process().id
        lease_s = settings.batch.lease_s
        # Created held by this process (a running worker cannot claim it first), and claimed
        # like a worker claims an uploaded job, so a worker takes it over (and says the input
        # is gone) if this process dies mid-load, instead of it validating forever.
        job = await store.create_job(
            mode=job_mode.value, input_name=input_path.name, held_by=(validator, lease_s)
        )
        claim = await store.claim_validation(validator, lease_s=lease_s, job_id=job.id)
        assert claim is not None, "a job just created is free to claim"
        with input_path.open("rb") as stream:
            return await load_requests(
                store,
                claim,
                stream,
                served=served_models(await served_catalog(store.database, settings.catalog())),
                limits=settings.batch,
                request_limits=settings.api.request_limits,
                skip_invalid=skip_invalid,
            )

    report = await _with_store(settings, load)
    for problem in report.problems:
        err_console.print(
            f"[red]line {problem.line}[/] {problem.code}: {escape(problem.message)}",
            highlight=False,
        )
    if report.problem_count > len(report.problems):
        err_console.print(f"… and {report.problem_count - len(report.problems)} more bad lines")
    if report.job.status == "failed":
        raise InvalidBatchInput(report)
    return report.job


async def _work_and_report(
    settings: Settings,
    job_id: str,
    concurrency: int | None,
    output: Path,
    errors: Path | None,
) -> None:
    from serving.batch.store import WorkerInfo
    from serving.stores import open_database
    from serving.worker import open_batch_worker

    started = time.monotonic()
    async with (
        await open_database(settings) as database,
        open_batch_worker(
            settings,
            database,
            WorkerInfo.this_process(),
            concurrency=concurrency,
            job_id=job_id,
            log=log_to_stderr,
        ) as worker,
    ):
        store = worker.store
        job = await store.get_job(job_id)
        if job.status == "validating":
            raise UnderstudyError(
                f"{job_id} is still validating: a worker (`understudy worker`, or the API's) "
                "checks its input; resume it once it is in_progress"
            )
        if not job.finished:
            done = asyncio.Event()
            work = asyncio.create_task(worker.run())
            work.add_done_callback(lambda _task: done.set())
            try:
                await _show_progress(store, job_id, until=done)
                await work
            finally:
                work.cancel()  # nothing when it is done; on Ctrl-C it hands its items back
        job = await store.get_job(job_id)
        progress = await store.progress(job_id)
        await _write_files(store, job, progress, output, errors)
    _print_summary(job, progress, time.monotonic() - started)


async def _write_files(
    store: BatchStore, job: BatchJob, progress: BatchProgress, output: Path, errors: Path | None
) -> None:
    from serving.batch.output import ERROR_STATUSES, OUTPUT_STATUSES, file_lines, write_file

    written = await write_file(file_lines(store, job.id, OUTPUT_STATUSES), output)
    err_console.print(f"{written} answers → {output}", highlight=False)
    if progress.failed or progress.cancelled:
        errors = errors or output.with_name(output.name.removesuffix(".jsonl") + ".errors.jsonl")
        failed = await write_file(file_lines(store, job.id, ERROR_STATUSES), errors)
        err_console.print(f"[yellow]{failed} errors → {errors}[/]", highlight=False)


async def _show_progress(store: BatchStore, job_id: str, *, until: asyncio.Event) -> None:
    """A progress bar from the database's counts (so it shows every worker's progress), until
    ``until`` is set or the job is finished."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[red]{task.fields[failed]} failed"),
        _RateColumn(),
        TimeRemainingColumn(),
        TextColumn("${task.fields[cost]:.4f}"),
    )
    job = await store.get_job(job_id)
    with Progress(*columns, console=err_console, transient=False) as bar:
        task = bar.add_task(job.id, total=job.total or None, failed=0, cost=0.0)
        while True:
            progress = await store.progress(job_id)
            bar.update(
                task, completed=progress.done, failed=progress.failed, cost=progress.cost_usd
            )
            if until.is_set() or (await store.get_job(job_id)).finished:
                return
            with suppress(TimeoutError):
                await asyncio.wait_for(until.wait(), PROGRESS_REFRESH_S)


class _RateColumn(ProgressColumn):
    """Requests finished per second (rich's estimate over the last 30 s)."""

    def render(self, task: Task) -> Text:
        speed = task.speed
        return Text(f"{speed:.1f}/s" if speed else "-/s", style="progress.data.speed")


# ----------------------------------------------------------------------------- printing


def _print_summary(job: BatchJob, progress: BatchProgress, elapsed_s: float) -> None:
    console.print(_summary_text(job, progress, elapsed_s), highlight=False)


def _summary_text(job: BatchJob, p: BatchProgress, elapsed_s: float) -> str:
    without_lead = p.answered_without_lead / p.succeeded if p.succeeded else 0.0
    saved = (p.saved_usd / p.lead_only_cost_usd) if p.lead_only_cost_usd else 0.0
    return (
        f"{job.id} {job.status}: {p.total} requests · {p.succeeded} succeeded · "
        f"{p.failed} failed" + (f" · {p.cancelled} cancelled" if p.cancelled else "") + "\n"
        f"tokens: lead {p.lead_tokens:,} + slm {p.slm_tokens:,} · cost ${p.cost_usd:.6f}\n"
        f"{without_lead:.0%} answered without the lead · saved ${p.saved_usd:.6f} "
        f"({saved:.0%}) against llm mode (${p.lead_only_cost_usd:.6f})\n"
        f"{elapsed_s:.1f} s in this process"
    )


def _print_job(job: BatchJob, progress: BatchProgress) -> None:
    console.print(
        f"[bold]{job.id}[/] · {job.status} · mode {job.mode} · {job.input_name} · "
        f"created {job.created_at:%Y-%m-%d %H:%M:%S}",
        highlight=False,
    )
    console.print(
        f"{progress.done}/{progress.total} done: {progress.succeeded} succeeded, "
        f"{progress.failed} failed, {progress.cancelled} cancelled · {progress.running} running, "
        f"{progress.pending} pending",
        highlight=False,
    )
    console.print(
        f"lead {progress.lead_tokens:,} + slm {progress.slm_tokens:,} tokens · "
        f"cost ${progress.cost_usd:.6f} · saved ${progress.saved_usd:.6f} against llm mode",
        highlight=False,
    )
    for error in job.errors or []:
        console.print(
            f"[red]line {error['line']}[/] {error['code']}: {escape(error['message'])}",
            highlight=False,
        )


def _job_dict(job: BatchJob) -> dict[str, Any]:
    return {**asdict(job), "finished": job.finished}


def _progress_dict(progress: BatchProgress) -> dict[str, Any]:
    return {**asdict(progress), "total": progress.total, "saved_usd": progress.saved_usd}


# -------------------------------------------------------------------------------- plumbing


def _require_lead_for(settings: Settings, mode: Mode) -> None:
    if mode is Mode.slm:
        return
    from orchestrator.lead import require_lead
    from serving.orchestration import lead_config

    require_lead(lead_config(settings), mode.value)


async def _with_store(settings: Settings, action: Callable[[BatchStore], Awaitable[T]]) -> T:
    from serving.stores import open_database

    async with await open_database(settings) as database:
        return await action(BatchStore(database))


def _run_async(work: Coroutine[Any, Any, T], *, job: str = "JOB") -> T:
    try:
        return asyncio.run(work)
    except KeyboardInterrupt:
        err_console.print(
            f"[yellow]interrupted: answers so far are saved; `understudy batch resume {job}` "
            "finishes the job[/]",
            highlight=False,
        )
        raise typer.Exit(130) from None
