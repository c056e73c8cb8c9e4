"""Take a test database away for real, or make it refuse writes, and bring it back.

:func:`take_down`: on PostgreSQL the database stops accepting connections and its sessions are
ended; on SQLite its file is replaced by a directory, which no connection can open.
:func:`read_only`: the database still answers reads but refuses every write.
"""

from __future__ import annotations

import os
import shutil
import subprocess
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


async def read_only(url: str) -> Callable[[], Awaitable[None]]:
    """Make the database answer reads and refuse writes; returns what makes it writable again.

    On PostgreSQL, new sessions default to read-only transactions and the current ones are
    ended (so a pool reconnects into read-only ones). On SQLite the file is made read-only
    (0444, and immutable when running as root, whom modes do not stop); only connections opened
    afterwards see that, so close every engine on it first.
    """
    target = make_url(url)
    if target.get_backend_name() == "sqlite":
        path = Path(target.database or "")
        mode = path.stat().st_mode
        path.chmod(0o444)
        if os.geteuid() == 0:
            subprocess.run(["chattr", "+i", str(path)], check=True)

        async def make_writable() -> None:
            if os.geteuid() == 0:
                subprocess.run(["chattr", "-i", str(path)], check=True)
            path.chmod(mode)

        return make_writable
    name = target.database
    await _set_read_only(name, True)

    async def make_writable_again() -> None:
        await _set_read_only(name, False)

    return make_writable_again


async def _set_read_only(name: str | None, on: bool) -> None:
    """Set the database's default transaction mode, and end its sessions so none keeps the
    old one."""
    admin = create_engine(POSTGRES_URL)
    try:
        async with admin.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            value = "on" if on else "off"
            await connection.execute(
                text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = {value}')
            )
            await connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
    finally:
        await admin.dispose()
