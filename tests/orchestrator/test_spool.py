"""The transcript spool: what the database refuses is kept durably and written once it takes
writes again — exactly, run id included — and a run nothing can record fails loudly."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from database import StoreError
from orchestrator.run import Orchestrator
from orchestrator.testing import ScriptedLead, reply
from orchestrator.transcripts import (
    RunNotFound,
    SpoolLimits,
    SpoolRefused,
    TranscriptLost,
    TranscriptSpool,
    TranscriptStore,
)
from specialists import Catalog
from specialists.local import LocalBackend
from tests.helpers.outage import read_only
from tests.helpers.stores import open_store
from tests.orchestrator.test_modes import lead_for
from tests.orchestrator.test_transcripts import APP_TOOL_CALLS, make_run


@pytest.fixture
async def backend(smollm2_dir: Path) -> AsyncIterator[LocalBackend]:
    """Never asked in these tests (mode ``llm``): the lead answers alone."""
    local = LocalBackend(smollm2_dir, base_ref="smollm2-135m")
    yield local
    await local.aclose()


async def test_a_spooled_run_is_written_to_the_store_exactly_and_leaves_the_spool(
    transcript_store: TranscriptStore, tmp_path: Path
) -> None:
    spool = TranscriptSpool(tmp_path / "spool")
    run = make_run(finish_reason="length", degraded=True)
    answered_with_tools = make_run(
        answer="", finish_reason="tool_calls", app_tool_calls=APP_TOOL_CALLS
    )

    await spool.put(run)

    [spooled] = list((tmp_path / "spool").iterdir())
    assert stat.S_IMODE(spooled.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "spool").stat().st_mode) == 0o700
    assert spool.pending() == 1
    assert await spool.drain(transcript_store) == 1
    assert spool.pending() == 0 and not list((tmp_path / "spool").iterdir())
    assert await transcript_store.get_run(run.run_id) == run  # every field, run id included
    await spool.put(answered_with_tools)
    assert await spool.drain(transcript_store) == 1
    assert await transcript_store.get_run(answered_with_tools.run_id) == answered_with_tools


async def test_a_run_the_store_already_has_is_removed_from_the_spool_not_written_twice(
    transcript_store: TranscriptStore, tmp_path: Path
) -> None:
    spool = TranscriptSpool(tmp_path / "spool")
    run = make_run()
    await transcript_store.save_run(run)
    await spool.put(replace(run, answer="a second answer for the same run id"))

    assert await spool.drain(transcript_store) == 0
    assert spool.pending() == 0
    assert (await transcript_store.get_run(run.run_id)).answer == run.answer


async def test_a_spool_file_unreadable_or_refused_stays_and_does_not_block_the_others(
    transcript_store: TranscriptStore, tmp_path: Path
) -> None:
    spool = TranscriptSpool(tmp_path / "spool")
    run = make_run()
    await spool.put(run)
    (tmp_path / "spool" / "0-damaged.json").write_text("{not json")
    await spool.put(make_run(mode="m" * 100))  # no store takes a mode that long

    assert await spool.drain(transcript_store) == 1
    assert await transcript_store.get_run(run.run_id) == run
    assert spool.pending() == 2  # left for the operator, never dropped


async def test_a_full_spool_refuses_and_a_run_spooled_again_replaces_its_record(
    tmp_path: Path,
) -> None:
    spool = TranscriptSpool(tmp_path / "spool", SpoolLimits(max_runs=1))
    first = make_run()
    await spool.put(first)
    await spool.put(replace(first, answer="the latest attempt"))  # same id: replaces
    assert spool.pending() == 1
    with pytest.raises(SpoolRefused, match="full"):
        await spool.put(make_run())
    assert spool.pending() == 1

    tiny = TranscriptSpool(tmp_path / "tiny", SpoolLimits(max_bytes=1024))
    with pytest.raises(SpoolRefused, match="full"):
        await tiny.put(make_run())
    assert tiny.pending() == 0


async def test_a_run_the_database_refuses_is_spooled_then_written_when_it_takes_writes(
    database_url: str, backend: LocalBackend, tmp_path: Path
) -> None:
    store = await open_store(TranscriptStore, database_url)
    spool = TranscriptSpool(tmp_path / "spool")
    try:
        with ScriptedLead([reply("Paris.")]) as lead:
            orchestrator = Orchestrator(
                catalog=Catalog.default(),
                backend=backend,
                lead=lead_for(lead),
                store=store,
                spool=spool,
            )
            await store.database.engine.dispose()  # SQLite: connections opened later see it
            make_writable = await read_only(database_url)
            try:
                result = await orchestrator.run("Capital of France?", "llm")
                assert result.answer == "Paris." and spool.pending() == 1
                with pytest.raises(RunNotFound):  # reads still work; the write did not
                    await store.get_run(result.run_id)
            finally:
                await make_writable()
        await store.database.engine.dispose()
        assert await spool.drain(store) == 1
        recorded = await store.get_run(result.run_id)
        assert (recorded.answer, recorded.mode, recorded.finish_reason) == ("Paris.", "llm", "stop")
        assert len(recorded.lead_calls) == 1 and spool.pending() == 0
    finally:
        await store.database.close()


async def test_a_run_neither_the_database_nor_the_spool_takes_fails_with_transcript_lost(
    database_url: str, backend: LocalBackend, tmp_path: Path
) -> None:
    store = await open_store(TranscriptStore, database_url)
    (tmp_path / "a-file").write_text("")
    unwritable = TranscriptSpool(tmp_path / "a-file" / "spool")  # under a file: never a dir
    try:
        with ScriptedLead([reply("Paris."), reply("Paris.")]) as lead:
            orchestrators = [
                Orchestrator(
                    catalog=Catalog.default(),
                    backend=backend,
                    lead=lead_for(lead),
                    store=store,
                    spool=spool,
                )
                for spool in (unwritable, None)
            ]
            await store.database.engine.dispose()
            make_writable = await read_only(database_url)
            try:
                for orchestrator in orchestrators:
                    with pytest.raises(TranscriptLost) as info:
                        await orchestrator.run("Capital of France?", "llm")
                    assert isinstance(info.value, StoreError) and info.value.run_id
                    with pytest.raises(RunNotFound):
                        await store.get_run(info.value.run_id)
            finally:
                await make_writable()
    finally:
        await store.database.close()
