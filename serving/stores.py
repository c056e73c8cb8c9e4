"""The process's one database, opened from settings, for commands that need a store.

Every store of a process is built on the :class:`~database.Database` opened here (one engine, one
SQLite write queue); nothing else in ``serving`` opens a database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from database import Database
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
