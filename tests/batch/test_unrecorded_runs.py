"""A batch item whose run the database will not record: with a spool the run is kept there and
the item is answered; with nothing to keep it the item is not finished — it stays claimed, to be
tried again (never an answer without a transcript, never an error line for a database fault)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.testing import ScriptedLead, reply
from orchestrator.transcripts import TranscriptLost, TranscriptSpool
from serving.batch.runner import ItemRunner, run_id_for
from tests.batch.test_runner import NO_WAIT, stack
from tests.helpers.outage import read_only


async def test_a_spooled_run_answers_its_item(database_url: str, tmp_path: Path) -> None:
    spool = TranscriptSpool(tmp_path / "spool")
    with ScriptedLead([reply("42")], model="gpt-4o-mini") as lead:
        async with stack(database_url, lead, spool=spool) as s:
            await s.job(["q"])
            (item,) = await s.batches.claim("w", limit=1, lease_s=30)
            await s.transcripts.database.engine.dispose()
            make_writable = await read_only(database_url)
            try:
                result = await ItemRunner(s.orchestrator, s.transcripts, NO_WAIT).run(item)
            finally:
                await make_writable()
            await s.transcripts.database.engine.dispose()

            assert result.succeeded and spool.pending() == 1
            body = json.loads(result.output)["response"]["body"]
            assert body["choices"][0]["message"]["content"] == "42"
            assert await spool.drain(s.transcripts) == 1
            recorded = await s.transcripts.get_run(run_id_for(item, 1))
            assert recorded.answer == "42"


async def test_a_run_nothing_records_leaves_its_item_unfinished(database_url: str) -> None:
    with ScriptedLead([reply("42")], model="gpt-4o-mini") as lead:
        async with stack(database_url, lead) as s:  # no spool
            job_id = await s.job(["q"])
            (item,) = await s.batches.claim("w", limit=1, lease_s=30)
            await s.transcripts.database.engine.dispose()
            make_writable = await read_only(database_url)
            try:
                with pytest.raises(TranscriptLost):
                    await ItemRunner(s.orchestrator, s.transcripts, NO_WAIT).run(item)
            finally:
                await make_writable()
            await s.transcripts.database.engine.dispose()

            progress = await s.batches.progress(job_id)
            assert (progress.succeeded, progress.failed) == (0, 0)
            assert await s.run_count() == 0
