"""``understudy worker``: run queued jobs (batch requests today) until stopped."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Annotated

import typer

from serving.cli.output import err_console, log_to_stderr
from serving.settings import Settings, get_settings


def worker(
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind", "-k", help="Job kind to run; repeat for several (default: every kind)."
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, max=4096, help="Items at once (default: batch.concurrency, 64)."),
    ] = None,
) -> None:
    """Run queued jobs (batches, distillation) until Ctrl-C or SIGTERM.

    Start as many as you like, on any machines that share the database (PostgreSQL; with
    SQLite, one machine).

    Workers claim work with row locks, so no request runs twice; a worker that dies leaves its
    requests to the others once their lease (batch.lease_s) expires. Stopping a worker hands
    its requests back at once. Lead limits (batch.lead_*) are shared among the live workers.

    Example:

      UNDERSTUDY_DATABASE_URL=postgresql+asyncpg://… understudy worker --concurrency 128
    """
    from serving.batch.store import WorkerInfo
    from serving.stores import open_database
    from serving.worker import JOB_KINDS, WorkerContext, run_worker

    settings = get_settings()
    kinds = kind or list(JOB_KINDS)
    info = WorkerInfo.this_process()
    err_console.print(
        f"worker {info.id}: {', '.join(kinds)} jobs from {_database(settings)}; Ctrl-C stops it",
        highlight=False,
    )

    async def work(stop: asyncio.Event) -> None:
        async with await open_database(settings) as database:
            context = WorkerContext(
                settings, database, info, concurrency=concurrency, log=log_to_stderr
            )
            await run_worker(context, kinds, stop)

    asyncio.run(_until_signalled(work))
    err_console.print(f"worker {info.id} stopped", highlight=False)


async def _until_signalled(work: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``work`` with an event that Ctrl-C or SIGTERM sets (a clean stop, not an abort)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await work(stop)


def _database(settings: Settings) -> str:
    from database import mask_url

    return mask_url(settings.database_url)
