"""A batch worker waits for a database that went away (for real: tests.helpers.outage), and
still stops when asked to."""

from __future__ import annotations

import asyncio

from orchestrator.testing import ScriptedLead
from serving.batch.runner import ItemRunner
from serving.batch.store import WorkerInfo, WorkerStore
from serving.batch.worker import BatchWorker
from tests.batch.test_runner import stack
from tests.helpers.outage import take_down

STOPS_WITHIN_S = 5.0
"""Far below the worker's longest wait between tries (30 s): a stop ends the wait."""


async def test_a_worker_stops_at_once_while_the_database_is_down(
    database_url: str, lead: ScriptedLead
) -> None:
    async with stack(database_url, lead) as s:
        database = s.batches.database
        worker = BatchWorker(
            s.batches,
            WorkerStore(database),
            ItemRunner(s.orchestrator, s.transcripts),
            info=WorkerInfo.this_process(),
            concurrency=2,
            lease_s=30,
            poll_s=0.05,
        )
        stop = asyncio.Event()
        working = asyncio.create_task(worker.run(stop))
        await asyncio.sleep(0.3)  # registered, idle, polling for work
        restore = await take_down(database_url)
        try:
            await database.engine.dispose()  # no pooled connection outlives the outage
            await asyncio.sleep(1.5)  # the worker now waits for the database between tries
            assert not working.done()
            stop.set()
            await asyncio.wait_for(working, STOPS_WITHIN_S)
        finally:
            await restore()
