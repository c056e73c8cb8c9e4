"""The database every store shares, on real SQLite files and a real PostgreSQL server: its
engine, its migrations, and the errors it raises."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from database import Database, StoreError, upgrade_database
from database.engine import create_engine
from database.tables import Base
from orchestrator.transcripts import TranscriptStore
from specialists.errors import ConfigurationError, UnderstudyError
from tests.helpers.stores import open_store
from tests.orchestrator.test_transcripts import make_run

HEAD_REVISION = "0019"
"""The newest migration; bump it with each new one."""


async def test_public_names_are_pinned() -> None:
    """Each store's public names, where its room keeps them; every error is an UnderstudyError."""
    import database
    import distill.jobs
    import distill.registry
    import orchestrator.transcripts
    import serving.batch.store
    import serving.keys

    assert sorted(database.__all__) == [
        "Database",
        "Store",
        "StoreError",
        "mask_url",
        "parse_database_url",
        "upgrade_database",
    ]
    assert sorted(orchestrator.transcripts.__all__) == [
        "FeedbackRecord",
        "LeadCallRecord",
        "RunAlreadyRecorded",
        "RunNotFound",
        "RunRecord",
        "SpoolLimits",
        "SpoolRefused",
        "TranscriptLost",
        "TranscriptSpool",
        "TranscriptStore",
        "keep_draining",
    ]
    assert sorted(serving.batch.store.__all__) == [
        "BatchJob",
        "BatchNotFound",
        "BatchProgress",
        "BatchStore",
        "CHAT_ENDPOINT",
        "ClaimedItem",
        "FINAL_STATUSES",
        "FileDigest",
        "FileExpired",
        "FileNotFound",
        "FileStore",
        "ItemOutput",
        "ItemResult",
        "NewItem",
        "RESPONSES_ENDPOINT",
        "StoredFile",
        "ValidationClaim",
        "ValidationLost",
        "ValidationStore",
        "WorkerInfo",
        "WorkerStore",
    ]
    errors = [
        database.StoreError,
        orchestrator.transcripts.RunAlreadyRecorded,
        orchestrator.transcripts.RunNotFound,
        orchestrator.transcripts.SpoolRefused,
        orchestrator.transcripts.TranscriptLost,
        serving.batch.store.BatchNotFound,
        serving.batch.store.FileNotFound,
        serving.batch.store.ValidationLost,
        serving.keys.KeyNotFound,
        distill.registry.NotInRegistry,
        distill.registry.PromotionRefused,
        distill.registry.RegistryError,
    ]
    assert all(issubclass(error, UnderstudyError) for error in errors)
    for store in (
        orchestrator.transcripts.TranscriptStore,
        serving.batch.store.BatchStore,
        serving.batch.store.FileStore,
        serving.batch.store.WorkerStore,
        serving.keys.KeyStore,
        distill.registry.RegistryStore,
        distill.jobs.DistillJobStore,
    ):
        assert issubclass(store, database.Store)


async def test_reopening_keeps_data_and_migrating_again_changes_nothing(database_url: str) -> None:
    run = make_run()
    store = await open_store(TranscriptStore, database_url)
    try:
        await store.save_run(run)
        await store.add_feedback(run.run_id, 0.5, "fine")
    finally:
        await store.database.close()

    await upgrade_database(database_url)
    async with await Database.open(database_url) as database:
        reopened = TranscriptStore(database)
        assert await reopened.get_run(run.run_id) == run
        assert [f.comment for f in await reopened.feedback_for(run.run_id)] == ["fine"]
    assert await _alembic_versions(database_url) == [HEAD_REVISION]


async def test_open_without_migrate_leaves_the_schema_alone(database_url: str) -> None:
    async with await Database.open(database_url, migrate=False) as database:
        store = TranscriptStore(database)
        with pytest.raises(StoreError, match="list_runs failed"):
            await store.list_runs()
    assert await _table_names(database_url) == []


async def test_concurrent_migrations_do_not_collide(database_url: str) -> None:
    # HTTP workers starting together each open the store with migrate=True.
    async with asyncio.timeout(30):  # a regression here deadlocks rather than fails
        await asyncio.gather(*(upgrade_database(database_url) for _ in range(4)))
    assert await _alembic_versions(database_url) == [HEAD_REVISION]


async def test_migration_matches_the_orm_metadata(database_url: str) -> None:
    assert await _schema_diff(database_url), "an empty database must differ from the metadata"
    await upgrade_database(database_url)
    assert await _schema_diff(database_url) == []
    assert set(await _table_names(database_url)) == {
        "alembic_version",
        "runs",
        "lead_calls",
        "tool_calls",
        "handed_over_calls",
        "feedback",
        "api_keys",
        "api_key_usage",
        "files",
        "batch_jobs",
        "batch_items",
        "workers",
        "registry_state",
        "specialist_proposals",
        "specialists",
        "specialist_versions",
        "distill_jobs",
        "write_probes",
        "stored_responses",
        "audits",
        "specialist_events",
        "paused_specialists",
        "console_sessions",
        "run_rollups",
    }


async def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "t.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.connect() as connection:
            pragmas = [
                (await connection.exec_driver_sql(f"PRAGMA {name}")).scalar_one()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            ]
    finally:
        await engine.dispose()
    assert pragmas == ["wal", 1, 10_000]
    assert path.is_file()


async def test_a_new_sqlite_file_and_its_journal_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "home" / "understudy.db"
    async with await Database.open(f"sqlite+aiosqlite:///{path}") as database:
        await TranscriptStore(database).save_run(make_run())
        journal = [path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")]
        assert {file: stat.S_IMODE(file.stat().st_mode) for file in journal} == dict.fromkeys(
            journal, 0o600
        )
    path.chmod(0o640)  # an existing file keeps the mode its operator chose
    async with await Database.open(f"sqlite+aiosqlite:///{path}"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///plain-sync-driver.db",
        "postgresql://user:s3cret@db.example/understudy",
        "mysql+aiomysql://user:s3cret@db.example/understudy",
        "not a url",
    ],
)
async def test_unsupported_urls_are_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        await Database.open(url)
    assert caught.value.setting == "UNDERSTUDY_DATABASE_URL"
    assert "s3cret" not in str(caught.value)
    with pytest.raises(ConfigurationError):
        await upgrade_database(url)


async def test_a_database_from_a_newer_version_is_a_store_error(database_url: str) -> None:
    await upgrade_database(database_url)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        await engine.dispose()

    with pytest.raises(StoreError, match="9999") as caught:
        await Database.open(database_url)
    assert caught.value.operation == "migrate"


async def test_an_uncreatable_sqlite_directory_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StoreError, match="open failed"):
        await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'file' / 'sub' / 't.db'}")


async def test_database_errors_are_wrapped_without_the_password() -> None:
    url = "postgresql+asyncpg://understudy:s3cret-pw@127.0.0.1:1/nowhere"  # nothing listens on 1
    with pytest.raises(StoreError) as caught:
        await Database.open(url)
    message = str(caught.value)
    assert "s3cret-pw" not in message and "understudy:***@127.0.0.1:1/nowhere" in message
    assert caught.value.operation == "migrate" and caught.value.__cause__ is not None


async def _run_sync(url: str, fn: Any) -> Any:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(fn)
    finally:
        await engine.dispose()


async def _schema_diff(url: str) -> list[Any]:
    def diff(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)

    return await _run_sync(url, diff)


async def _table_names(url: str) -> list[str]:
    from sqlalchemy import inspect

    return await _run_sync(url, lambda connection: sorted(inspect(connection).get_table_names()))


async def _alembic_versions(url: str) -> list[str]:
    def versions(connection: Connection) -> list[str]:
        rows = connection.execute(text("SELECT version_num FROM alembic_version"))
        return [row[0] for row in rows]

    return await _run_sync(url, versions)
