"""A database made by the previous release upgrades in place, with nothing lost.

``tests/fixtures/database_0004.sqlite`` was written by the code of schema 0004 (before the stores
moved to their rooms): three runs with lead and tool calls, feedback, an API key with usage, an
uploaded file, a batch job with a succeeded, a pending and an invalid item, a worker, a proposal
accepted into a promoted specialist version, and a queued distillation job. On SQLite the test
upgrades a copy of that very file; on PostgreSQL it builds schema 0004 with the migrations and
copies the file's rows into it. Either way, today's stores must read everything back and keep
writing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import make_url

from database import Database, upgrade_database
from database.engine import create_engine
from database.tables import Base
from distill.jobs import DistillJobStore
from distill.registry import RegistryStore
from orchestrator.transcripts import TranscriptStore
from serving.batch.store import BatchStore, FileStore, WorkerInfo, WorkerStore
from serving.keys import KeyStore
from tests.orchestrator.test_transcripts import make_run

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "database_0004.sqlite"
FIXTURE_REVISION = "0004"
FIXTURE_KEY = "us-sb_lyaY5-UEhNQP2siS6aBgm_TIbnPl6mx-73aQQYik"
"""The plaintext of the fixture's one API key, printed when the file was made."""


async def test_a_database_of_the_previous_schema_upgrades_with_nothing_lost(
    database_url: str, tmp_path: Path
) -> None:
    await _previous_release_database(database_url, tmp_path)

    async with await Database.open(database_url) as database:
        transcripts = TranscriptStore(database)
        runs = await transcripts.list_runs(limit=10)
        assert sorted(run.run_id for run in runs) == ["run0", "run1", "run2"]
        run0 = await transcripts.get_run("run0")
        assert (run0.mode, run0.route, run0.answer, run0.specialists) == (
            "router",
            "router",
            "0",
            ["math"],
        )
        assert [call.model for call in run0.lead_calls] == ["gpt-x"]
        assert [(call.name, call.confidence) for call in run0.tool_calls] == [
            ("math_specialist", 0.9)
        ]
        # what schema 0005 added reads as "not known then", not as an error
        assert (run0.failure, run0.route_scores) == (None, {})
        assert [(c.specialist, c.slm_prompt_tokens) for c in run0.tool_calls] == [(None, 0)]
        # schema 0008: runs before it reported "stop", and keys follow the server's policy
        assert run0.finish_reason == "stop"
        assert [(f.score, f.comment) for f in await transcripts.feedback_for("run0")] == [
            (1.0, "right")
        ]

        key = await KeyStore(database).authenticate(FIXTURE_KEY)
        assert key is not None
        assert (key.name, key.requests_per_minute, key.tokens_per_day) == ("alice", 60, 1000)
        assert key.on_degraded is None

        [upload] = await FileStore(database).list_files()
        assert (upload.filename, upload.bytes, upload.path) == ("in.jsonl", 10, "f/in.jsonl")

        batches = BatchStore(database)
        [job] = await batches.list_jobs()
        assert (job.status, job.input_file_id, job.metadata) == (
            "in_progress",
            upload.id,
            {"k": "v"},
        )
        progress = await batches.progress(job.id)
        assert (progress.succeeded, progress.pending, progress.failed) == (1, 1, 1)
        assert progress.lead_tokens == 15

        registry = RegistryStore(database)
        snapshot = await registry.snapshot()
        assert [version.label for version in snapshot.active] == ["museum_open@1"]
        assert snapshot.active[0].metrics == {"precision": 0.97}
        assert set(snapshot.definitions) == {"museum_open"}
        [proposal] = await registry.list_proposals()
        assert (proposal.status, proposal.run_ids) == ("accepted", ("run2",))

        [distill_job] = await DistillJobStore(database).list()
        assert (distill_job.specialist, distill_job.status) == ("math", "queued")

        # …and the upgraded database takes new writes in every table family.
        await transcripts.save_run(make_run(run_id="after-upgrade"))
        await database.probe_write("after-upgrade")
        await transcripts.add_feedback("after-upgrade", 0.5)
        await KeyStore(database).create("bob")
        assert await WorkerStore(database).heartbeat(WorkerInfo.this_process(), lease_s=60) >= 1
        version = await registry.add_version(
            "museum_open",
            adapter_path="/a/m2",
            adapter_sha256="ef" * 32,
            base_model="smollm2-135m",
            lora_rank=8,
        )
        assert version.version == 2


async def _previous_release_database(url: str, tmp_path: Path) -> None:
    """The fixture at ``url``: the file itself for SQLite; schema 0004 plus its rows elsewhere."""
    target = make_url(url)
    if target.get_backend_name() == "sqlite":
        path = Path(target.database or "")
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FIXTURE, path)
        return
    source = tmp_path / "source.sqlite"
    shutil.copyfile(FIXTURE, source)
    await upgrade_database(url, FIXTURE_REVISION)
    await _copy_rows(f"sqlite+aiosqlite:///{source}", url)


async def _copy_rows(source_url: str, target_url: str) -> None:
    """Every row of ``source`` in place of ``target``'s (the migrations seed some), parents
    first; then each serial id sequence is moved past the copied ids, as if the rows had been
    inserted there."""
    source, target = create_engine(source_url), create_engine(target_url)
    try:
        async with source.connect() as reader, target.begin() as writer:
            present = await reader.run_sync(
                lambda c: {
                    t: {col["name"] for col in inspect(c).get_columns(t)}
                    for t in inspect(c).get_table_names()
                }
            )
            tables = [t for t in Base.metadata.sorted_tables if t.name in present]
            for table in reversed(tables):
                await writer.execute(table.delete())
            for table in tables:
                columns = [column for column in table.c if column.name in present[table.name]]
                rows = (await reader.execute(select(*columns))).mappings().all()
                if rows:
                    await writer.execute(table.insert(), [dict(row) for row in rows])
                integer_keys = [c.name for c in table.primary_key if c.autoincrement is True]
                for column in integer_keys:
                    await writer.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column}'), "
                            f"(SELECT coalesce(max({column}), 0) + 1 FROM {table.name}), false)"
                        )
                    )
    finally:
        await source.dispose()
        await target.dispose()


@pytest.fixture(scope="module", autouse=True)
def _fixture_exists() -> None:
    assert FIXTURE.is_file(), f"missing {FIXTURE}"
