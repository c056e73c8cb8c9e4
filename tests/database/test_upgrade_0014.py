"""A registry of schema 0013 upgrades to 0014 in place: its versions keep their status and gain
the lifecycle (canaries, events, pauses), and the status check knows the new statuses."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from database import Database, StoreError, upgrade_database
from database.engine import create_engine
from distill.jobs import DistillJobStore
from distill.registry import EventKind, RegistryStore

VERSION = (
    "INSERT INTO specialist_versions (id, specialist, version, status, adapter_path, "
    "adapter_sha256, base_model, lora_rank, threshold, gate_passed, metrics, replaces_id, "
    "created_at) VALUES (:id, 'math', :id, :status, '/a', :sha, 'tiny', 8, 0.5, :passed, '{}', "
    ":replaces, '2026-01-01 00:00:00+00:00')"
)


JOB = (
    "INSERT INTO distill_jobs (id, specialist, trigger, status, attempts, version_id, "
    "created_at) VALUES ('job1', 'math', 'manual', 'succeeded', 1, 2, "
    "'2026-01-01 00:00:00+00:00')"
)


async def test_a_0013_registry_upgrades_and_takes_canaries(database_url: str) -> None:
    await upgrade_database(database_url, "0013")
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            for row in (
                {"id": 1, "status": "retired", "passed": True, "replaces": None},
                {"id": 2, "status": "active", "passed": True, "replaces": 1},
                {"id": 3, "status": "candidate", "passed": True, "replaces": None},
            ):
                await connection.execute(text(VERSION), {**row, "sha": "ab" * 32})
            await connection.execute(text(JOB))
    finally:
        await engine.dispose()

    async with await Database.open(database_url) as database:
        registry = RegistryStore(database)
        versions = await registry.list_versions("math")
        assert [(v.status, v.retire_reason, v.canary_share) for v in versions] == [
            ("retired", None, None),
            ("active", None, None),
            ("candidate", None, None),
        ]
        assert versions[1].replaces_id == 1  # SQLite's table copy kept what points at rows
        assert (await DistillJobStore(database).get("job1")).version_id == 2
        assert await registry.events() == []
        canary = await registry.start_canary(3, 0.1, actor="test")
        assert canary.status == "canary"
        rejected = await registry.conclude_canary(3, passed=False, reason="r", figures={})
        assert rejected.status == "rejected"
        demoted, restored = await registry.demote("math", reason="drift", figures={})
        assert (demoted.id, restored and restored.id) == (2, 1)
        assert [e.kind for e in await registry.events()] == [
            EventKind.demoted,
            EventKind.canary_rejected,
            EventKind.canary_started,
        ]
        # the status check was rebuilt, not dropped: an unknown status is still refused
        with pytest.raises(StoreError):
            async with database.write_session("bad status") as session:
                await session.execute(
                    text("UPDATE specialist_versions SET status = 'bogus' WHERE id = 1")
                )
