"""The process's one database, opened from settings, for commands that need a store, and the
transcript spool that stands in for it while it refuses writes.

Every store of a process is built on the :class:`~database.Database` opened here (one engine, one
SQLite write queue); nothing else in ``serving`` opens a database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from database import Database
from orchestrator.transcripts import TranscriptSpool, TranscriptStore, keep_draining
from serving.settings import Settings

T = TypeVar("T")


async def open_database(settings: Settings, *, migrate: bool = True) -> Database:
    """The settings' database, migrated to the newest schema unless ``migrate`` is off."""
    return await Database.open(settings.database_url, migrate=migrate)


def run_with_database(settings: Settings, action: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``action`` on the settings' database in a new event loop, closing it afterwards (for
    synchronous CLI commands)."""

    async def main() -> T:
        async with await open_database(settings) as database:
            return await action(database)

    return asyncio.run(main())


def transcript_spool(settings: Settings) -> TranscriptSpool:
    """The settings' transcript spool (every process of a host shares it)."""
    return TranscriptSpool(settings.spool_dir, settings.database.spool_limits())


async def drain_spool(settings: Settings, database: Database, stop: asyncio.Event) -> None:
    """Write spooled transcripts to ``database`` whenever it takes them, until ``stop``."""
    await keep_draining(
        transcript_spool(settings),
        TranscriptStore(database),
        interval_s=settings.database.spool_drain_s,
        stop=stop,
    )


@asynccontextmanager
async def spool_drainer(settings: Settings, database: Database) -> AsyncIterator[None]:
    """:func:`drain_spool` in the background while the block runs."""
    stop = asyncio.Event()
    draining = asyncio.create_task(drain_spool(settings, database, stop), name="spool-drainer")
    try:
        yield
    finally:
        stop.set()
        await draining
