"""Fixtures for orchestrator tests: a fresh database per test, on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from orchestrator.store import TranscriptStore
from tests.conftest import POSTGRES_URL


async def _admin_sql(statement: str) -> None:
    """Run one statement on the server's ``test`` database outside a transaction.

    CREATE/DROP DATABASE cannot run inside one, hence AUTOCOMMIT; NullPool so no connection
    outlives the statement (DROP … WITH (FORCE) would otherwise have to kill it).
    """
    engine = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.exec_driver_sql(statement)
    finally:
        await engine.dispose()


# No loop_scope here: these fixtures follow pyproject's defaults, which put fixtures and tests on
# the same loop. Engines and stores must live on the loop that uses them (asyncpg binds to one).
@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of its own for each test: a SQLite file, or a new PostgreSQL database.

    The SQLite file sits in a directory that does not exist yet, so opening it also checks that
    the store creates its parent. The PostgreSQL database is created on the server at
    ``UNDERSTUDY_TEST_POSTGRES_URL`` and dropped (connections and all) afterwards. A server that
    cannot be reached fails the test rather than skipping it: half the matrix silently missing
    would hide PostgreSQL-only regressions.
    """
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'store' / 'transcripts.db'}"
        return
    name = f"understudy_test_{uuid.uuid4().hex[:16]}"
    try:
        await _admin_sql(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # a clear failure instead of a driver traceback
        pytest.fail(f"cannot create a test database on {POSTGRES_URL}: {exc}")
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest_asyncio.fixture
async def transcript_store(database_url: str) -> AsyncIterator[TranscriptStore]:
    """A migrated, empty :class:`TranscriptStore` on each backend, closed after the test."""
    store = await TranscriptStore.open(database_url)
    try:
        yield store
    finally:
        await store.close()
