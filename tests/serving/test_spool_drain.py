"""The drainer every serving process runs (``serving.stores.drain_spool``: the API's lifespan,
``understudy worker``): it writes what the settings' spool holds once the database takes writes,
and stops when told to, even while the database is down."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from database import Database
from orchestrator.transcripts import TranscriptStore
from serving.settings import Settings
from serving.stores import drain_spool, transcript_spool
from tests.helpers.outage import take_down
from tests.orchestrator.test_transcripts import make_run

WITHIN_S = 10.0
"""Bound of a wait (the drain interval here is 0.05 s), never a measured time."""


@pytest.fixture
def settings(database_url: str, monkeypatch: pytest.MonkeyPatch, isolated_env: Path) -> Settings:
    monkeypatch.setenv("UNDERSTUDY_DATABASE_URL", database_url)
    monkeypatch.setenv("UNDERSTUDY_DATABASE_SPOOL_DRAIN_S", "0.05")
    return Settings()


async def test_the_drainer_writes_the_spool_once_the_database_is_back_and_stops_when_told(
    settings: Settings, isolated_env: Path
) -> None:
    spool = transcript_spool(settings)
    assert spool.directory == isolated_env / "spool"
    run = make_run()
    await spool.put(run)
    async with await Database.open(settings.database_url) as database:
        bring_back = await take_down(settings.database_url)
        await database.engine.dispose()
        stop = asyncio.Event()
        draining = asyncio.create_task(drain_spool(settings, database, stop))
        try:
            await asyncio.sleep(0.3)  # a few passes against a database that is down
            assert spool.pending() == 1 and not draining.done()
        finally:
            await bring_back()
        deadline = time.monotonic() + WITHIN_S
        while spool.pending():
            assert time.monotonic() < deadline, "the drainer did not write the spool"
            await asyncio.sleep(0.05)
        assert await TranscriptStore(database).get_run(run.run_id) == run

        stop.set()
        await asyncio.wait_for(draining, WITHIN_S)


async def test_the_drainer_stops_at_once_while_the_database_is_down(settings: Settings) -> None:
    await transcript_spool(settings).put(make_run())
    async with await Database.open(settings.database_url) as database:
        bring_back = await take_down(settings.database_url)
        try:
            await database.engine.dispose()
            stop = asyncio.Event()
            draining = asyncio.create_task(drain_spool(settings, database, stop))
            await asyncio.sleep(0.3)  # failing passes: the database is down
            stop.set()
            await asyncio.wait_for(draining, WITHIN_S)
            assert transcript_spool(settings).pending() == 1  # kept for the next drainer
        finally:
            await bring_back()
