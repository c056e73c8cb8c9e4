"""``Database.probe_write`` (what ``/readyz`` asks): it proves the database takes writes, so a
database that only reads, or that is gone, fails it — pooled connections included."""

from __future__ import annotations

import pytest

from database import Database, StoreError
from orchestrator.transcripts import TranscriptStore
from tests.helpers.outage import read_only, take_down


async def test_the_write_probe_fails_on_a_database_that_still_answers_reads(
    database_url: str,
) -> None:
    async with await Database.open(database_url) as database:
        await database.probe_write("test")
        await database.engine.dispose()  # SQLite: only connections opened later see the mode
        make_writable = await read_only(database_url)
        try:
            assert await TranscriptStore(database).list_runs(limit=1) == []  # reads work
            with pytest.raises(StoreError, match="probe_write"):
                await database.probe_write("test")
        finally:
            await make_writable()
        await database.engine.dispose()
        await database.probe_write("test")


async def test_the_write_probe_fails_at_once_when_the_database_is_taken_away(
    database_url: str,
) -> None:
    async with await Database.open(database_url) as database:
        await database.probe_write("test")  # a pooled connection now exists, and is kept
        bring_back = await take_down(database_url)
        try:
            with pytest.raises(StoreError, match="probe_write"):
                await database.probe_write("test")
        finally:
            await bring_back()
        await database.probe_write("test")
