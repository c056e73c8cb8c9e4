"""Database URLs, the process's one engine, its write path, and migrations.

Two backends are supported: SQLite through ``aiosqlite`` (the default, a file under
``UNDERSTUDY_HOME``) and PostgreSQL through ``asyncpg`` (shared deployments). A process opens one
:class:`Database` at its edge and builds every store it needs on it (:class:`Store`), so all of
them share one connection pool and, on SQLite, one queue of writers. Migrations are the Alembic
scripts shipped in ``migrations/``, run programmatically on the database's own connection, so
neither an ``alembic.ini`` nor a synchronous driver is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from database.errors import StoreError, mask_url
from database.tables import WriteProbeRow, table_of
from specialists.errors import ConfigurationError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""The Alembic script directory, shipped as package data."""
SUPPORTED_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
OWNER_ONLY_FILE = 0o600
"""Mode of a new SQLite file: it holds transcripts and key hashes."""
URL_SETTING = "UNDERSTUDY_DATABASE_URL"
SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long a SQLite writer waits for another process's write lock before failing."""
MIGRATION_LOCK_ID = 0x756E64657273
"""PostgreSQL advisory lock key ("unders") that serialises concurrent migrations."""
_BEGIN_OPTION = "understudy_sqlite_begin"
"""Execution option naming the BEGIN statement our SQLite hook emits."""


def parse_database_url(url: str) -> URL:
    """Check that ``url`` names a backend the store supports, before anything connects.

    Raises:
        ConfigurationError: The URL cannot be parsed or uses another driver; says which to use.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigurationError(
            f"cannot parse database URL {mask_url(url)!r}: {exc}", setting=URL_SETTING
        ) from exc
    if parsed.drivername not in SUPPORTED_DRIVERS:
        raise ConfigurationError(
            f"unsupported database URL {mask_url(url)!r}: use sqlite+aiosqlite:///path/to/file.db "
            "or postgresql+asyncpg://user:password@host/dbname",
            setting=URL_SETTING,
        )
    return parsed


@contextmanager
def wrap_errors(operation: str, url: str) -> Iterator[None]:
    """Turn database and driver errors into :class:`StoreError` with the password masked."""
    try:
        yield
    except SQLAlchemyError as exc:
        # A driver error's own message, without the SQL and parameters SQLAlchemy appends: those
        # can be whole transcripts.
        orig = getattr(exc, "orig", None)
        reason = str(orig) if orig is not None else f"{type(exc).__name__}: {exc}"
        raise StoreError(operation, url=url, reason=reason) from exc
    except OSError as exc:  # asyncpg raises connection failures unwrapped
        raise StoreError(operation, url=url, reason=f"{type(exc).__name__}: {exc}") from exc


def create_engine(url: str) -> AsyncEngine:
    """An async engine for ``url``, with SQLite set up for concurrent readers and one writer.

    For SQLite the parent directory is created, and every connection gets WAL journaling (readers
    do not block the writer), foreign keys (ON DELETE CASCADE works) and a busy timeout. SQLite's
    driver is also told to leave BEGIN to SQLAlchemy, so transactions (migrations included) are
    real transactions rather than the driver's legacy autocommit-for-DDL behaviour. A pooled
    SQLite connection whose file is no longer the one at the URL's path (deleted, replaced,
    moved away) is replaced on checkout, so writes fail or reach the file that is there instead
    of vanishing into an unlinked one.

    Raises:
        ConfigurationError: The URL is not supported.
        StoreError: The SQLite file's directory cannot be created.
    """
    parsed = parse_database_url(url)
    if parsed.get_backend_name() == "postgresql":
        return create_async_engine(parsed, pool_pre_ping=True)

    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        with wrap_errors("open", url):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            # Owner-only from its first byte (SQLite gives its -wal and -shm files the same
            # mode); an existing file is left as its operator made it.
            with contextlib.suppress(FileExistsError):
                os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OWNER_ONLY_FILE))
    engine = create_async_engine(parsed)
    event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
    if database and database != ":memory:" and not database.startswith("file:"):
        _follow_file(engine, Path(database))
    return engine


def _follow_file(engine: AsyncEngine, path: Path) -> None:
    """Keep every pooled connection on the file now at ``path``: a connection remembers the
    file it opened, and checking it out after that file was deleted or replaced discards it
    (the pool then connects afresh, to whatever is at ``path`` now)."""

    def on_connect(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["file"] = _file_identity(path)

    def on_checkout(_dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        if record.info.get("file") != _file_identity(path):
            raise DisconnectionError(f"{path} is no longer the file this connection opened")

    event.listen(engine.sync_engine, "connect", on_connect)
    event.listen(engine.sync_engine, "checkout", on_checkout)


def _file_identity(path: Path) -> tuple[int, int] | None:
    """Device and inode of the regular file at ``path``; ``None`` when there is none."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino) if path.is_file() else None


def _sqlite_on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, see _sqlite_on_begin
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    connection.exec_driver_sql(connection.get_execution_options().get(_BEGIN_OPTION, "BEGIN"))


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision`` (the newest schema by default), in
    one transaction.

    Safe to run from several processes at once (HTTP workers starting together): PostgreSQL takes
    an advisory lock, SQLite takes the write lock up front with ``BEGIN IMMEDIATE``.

    Raises:
        StoreError: The database cannot be reached or migrated.
    """
    url = engine.url.render_as_string(hide_password=False)
    with wrap_errors("migrate", url):
        async with engine.connect() as connection:
            connection = await connection.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})
            async with connection.begin():
                await connection.run_sync(_upgrade, url, revision)


def _upgrade(connection: Connection, url: str, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
    config = Config()
    # Config values go through configparser interpolation, where "%" is special.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.attributes["connection"] = connection
    try:
        command.upgrade(config, revision)
    except CommandError as exc:  # e.g. a database migrated by a newer Understudy
        reason = f"{exc} (was this database migrated by a newer Understudy?)"
        raise StoreError("migrate", url=url, reason=reason) from exc


async def upgrade_database(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision``: the newest schema (what
    :meth:`Database.open` runs) unless an older one is named (tests of upgrades do).

    Raises:
        ConfigurationError: The URL is not supported.
        StoreError: The database cannot be reached or migrated.
    """
    engine = create_engine(url)
    try:
        await migrate(engine, revision)
    finally:
        await engine.dispose()


_migrate_schema = migrate  # ``Database.open`` has a ``migrate`` flag that shadows the name


class Database:
    """The process's connection to its database: one engine (a pool) and one write queue.

    Open it once at the process's edge (:meth:`open`) and build every store on it
    (``TranscriptStore(database)``, ``KeyStore(database)``, …): SQLite has one writer, and
    queueing writes here beats its busy-timeout sleeps, which made concurrent requests wait
    seconds for each other — but only if every writer of the process waits in the same queue.
    """

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self.engine = engine
        self.url = url
        self._write_lock = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def writing(self) -> contextlib.AbstractAsyncContextManager[object]:
        """Hold this around every write transaction (a no-op except on SQLite)."""
        return self._write_lock or contextlib.nullcontext()

    @asynccontextmanager
    async def write_transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction that may read first: queued, and begun ``IMMEDIATE`` on SQLite,
        so a read inside it cannot fail on the lock upgrade; a plain transaction elsewhere."""
        async with self.writing(), self.engine.connect() as connection:
            connection = await connection.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})
            async with connection.begin():
                yield connection

    @asynccontextmanager
    async def write_session(self, operation: str) -> AsyncIterator[AsyncSession]:
        """An ORM session in one :meth:`write_transaction`, flushed at the end, with database
        errors wrapped as :class:`StoreError` (``operation`` names what failed)."""
        with wrap_errors(operation, self.url):
            async with (
                self.write_transaction() as connection,
                AsyncSession(bind=connection, expire_on_commit=False) as session,
            ):
                yield session
                await session.flush()

    async def probe_write(self, prober: str) -> None:
        """Write one row (``prober``'s in ``write_probes``): proof that the database takes
        writes now. Reading is not enough: a read-only SQLite file or a PostgreSQL database in
        ``default_transaction_read_only`` still answers reads.

        Raises:
            StoreError: The write failed.
        """
        now = datetime.now(UTC)
        insert = sqlite_insert if self.dialect == "sqlite" else postgresql_insert
        statement = (
            insert(table_of(WriteProbeRow))
            .values(name=prober, probed_at=now)
            .on_conflict_do_update(index_elements=["name"], set_={"probed_at": now})
        )
        with wrap_errors("probe_write", self.url):
            async with self.writing(), self.engine.begin() as connection:
                await connection.execute(statement)

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> Self:
        """Connect to ``url`` and, unless told not to, bring its schema up to date.

        Args:
            url: ``sqlite+aiosqlite:///path/to/file.db`` (the parent directory is created) or
                ``postgresql+asyncpg://user:password@host/dbname``.
            migrate: Run the Alembic migrations first. Turn off where a deployment migrates
                separately and the application role may not run DDL.

        Raises:
            ConfigurationError: The URL is not supported.
            StoreError: The database cannot be reached or migrated.
        """
        engine = create_engine(url)
        if migrate:
            try:
                await _migrate_schema(engine)
            except BaseException:
                await engine.dispose()
                raise
        return cls(engine, url)

    async def close(self) -> None:
        """Close every pooled connection. Safe to call twice."""
        await self.engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


class Store:
    """The base of every store: a view on the process's :class:`Database`.

    A store owns no connection of its own — closing the database closes them all — and every
    method of a store is a short transaction, so concurrent coroutines can share one.
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    @property
    def _engine(self) -> AsyncEngine:
        return self.database.engine

    @property
    def _url(self) -> str:
        return self.database.url

    def _writing(self) -> contextlib.AbstractAsyncContextManager[object]:
        return self.database.writing()

    def _write_transaction(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        return self.database.write_transaction()
