"""Take a test database away for real, and bring it back.

On PostgreSQL the database stops accepting connections and its sessions are ended; on SQLite its
file is replaced by a directory, which no connection can open.
"""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from database.engine import create_engine
from tests.conftest import POSTGRES_URL


async def take_down(url: str) -> Callable[[], Awaitable[None]]:
    """Make the database refuse every new connection; returns what brings it back."""
    target = make_url(url)
    if target.get_backend_name() == "sqlite":
        path = Path(target.database or "")
        kept = path.with_name(path.name + ".away")
        path.rename(kept)
        path.mkdir()

        async def bring_back_file() -> None:
            shutil.rmtree(path)
            kept.rename(path)

        return bring_back_file
    name = target.database
    admin = create_engine(POSTGRES_URL)
    async with admin.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        await connection.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
            {"name": name},
        )

    async def allow_connections() -> None:
        try:
            async with admin.connect() as connection:
                await connection.execution_options(isolation_level="AUTOCOMMIT")
                await connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        finally:
            await admin.dispose()

    return allow_connections
