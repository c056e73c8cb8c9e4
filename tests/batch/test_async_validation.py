"""Batch creation is asynchronous: ``POST /v1/batches`` answers ``validating`` at once, and
workers validate off the request path under a lease — one at a time per job, taken over when its
validator stops or dies, and stopped by a cancel. Both databases; real servers and workers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import openai
import pytest

from orchestrator.request import RequestLimits
from serving.batch.files import save_upload
from serving.batch.store import BatchStore, FileStore, NewItem, ValidationLost, WorkerInfo
from serving.batch.validation import CHUNK_ITEMS, load_requests
from serving.batch.validator import Validator
from serving.batch.worker import BatchWorker
from serving.protocol import ServedModels, served_models
from serving.settings import BatchSettings, Settings
from serving.stores import open_database
from serving.worker import open_batch_worker
from specialists.catalog import Catalog
from tests.batch.conftest import Server, batch_server, request_line, validating, write_requests

LARGE_LINES = 3_000
"""Lines of the large file: 8 KB each, 24 MB in all."""


@pytest.fixture
def server(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """An API server that validates and runs nothing itself (``batch.api_worker`` off)."""
    with batch_server(database_url, monkeypatch, api_worker=False) as running:
        yield running


@asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[BatchWorker]:
    """What ``understudy worker`` runs, started in this process; stopped on exit."""
    async with (
        await open_database(settings) as database,
        open_batch_worker(settings, database, WorkerInfo.this_process(), concurrency=1) as worker,
    ):
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            yield worker
        finally:
            stop.set()
            await task


def _upload(client: openai.OpenAI, path: Path) -> str:
    with path.open("rb") as file:
        return client.files.create(file=file, purpose="batch").id


def _create(client: openai.OpenAI, file_id: str) -> Any:
    return client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )


def _large_file(path: Path, lines: int) -> Path:
    """``lines`` valid requests of 8 KB each, written in one go."""
    head, tail = json.dumps(request_line("ID", "x" * 8000)).split('"ID"')
    path.write_text("".join(f'{head}"req-{i}"{tail}\n' for i in range(lines)), encoding="utf-8")
    return path


async def test_a_large_file_is_validating_at_once_and_a_worker_started_later_validates_it(
    server: Server, tmp_path: Path
) -> None:
    path = _large_file(tmp_path / "large.jsonl", LARGE_LINES)
    assert path.stat().st_size > 20_000_000
    batch = _create(server.client, _upload(server.client, path))
    assert (batch.status, batch.request_counts.total, batch.errors) == ("validating", 0, None)

    # No worker runs: nothing of the file was read, and the batch waits for one.
    async with await open_database(server.settings) as database:
        store = BatchStore(database)
        assert (await store.progress(batch.id)).total == 0
        assert (await store.get_job(batch.id)).status == "validating"
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key=server.key, max_retries=0)
        totals = []
        async with running_worker(server.settings), asyncio.timeout(300):
            while (seen := await client.batches.retrieve(batch.id)).status == "validating":
                totals.append(seen.request_counts.total)
                await asyncio.sleep(0.05)
        await client.close()
        assert (seen.status, seen.request_counts.total) == ("in_progress", LARGE_LINES)
        assert seen.in_progress_at is not None and seen.errors is None
        # While validating, the total only grows, a checkpoint (a chunk of lines) at a time.
        assert totals == sorted(totals)
        assert set(totals) <= set(range(0, LARGE_LINES + 1, CHUNK_ITEMS))
        items = await store.progress(batch.id)
        assert items.total == LARGE_LINES
    cancelled = server.client.batches.cancel(batch.id)  # the worker stopped: nothing runs
    assert cancelled.status == "cancelled"


async def test_a_file_with_bad_lines_fails_with_the_errors_the_request_used_to_answer(
    server: Server, tmp_path: Path
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps(request_line("a", "fine")),
                "{not json",
                json.dumps({**request_line("b", "x"), "body": {"model": "m", "messages": []}}),
                json.dumps(request_line("a", "again")),
            ]
        )
        + "\n"
    )
    batch = _create(server.client, _upload(server.client, path))
    assert batch.status == "validating"
    # Polled with the async client: a blocking call would stall the worker sharing this event
    # loop in the middle of its write, holding SQLite's write lock against the server's writes.
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key=server.key, max_retries=0)
    async with running_worker(server.settings) as worker, asyncio.timeout(120):
        assert worker.validator is not None
        while (await client.batches.retrieve(batch.id)).status == "validating":
            await asyncio.sleep(0.05)
    await client.close()
    failed = server.client.batches.retrieve(batch.id)
    assert failed.status == "failed" and failed.failed_at is not None
    assert [(e.line, e.code, e.param) for e in failed.errors.data] == [
        (2, "invalid_json", None),
        (3, "invalid_body", "messages"),
        (4, "duplicate_custom_id", None),
    ]
    assert failed.errors.data[2].message == "custom_id 'a' is already used on line 1"
    assert failed.request_counts.total == 0 and server.lead.requests == []


async def test_a_batch_cancelled_while_validating_stays_cancelled_and_keeps_nothing(
    server: Server, tmp_path: Path
) -> None:
    batch = _create(server.client, _upload(server.client, write_requests(tmp_path / "in", 5)))
    cancelled = server.client.batches.cancel(batch.id)
    assert (cancelled.status, cancelled.request_counts.total) == ("cancelled", 0)
    assert cancelled.cancelled_at is not None and cancelled.error_file_id is None
    async with running_worker(server.settings) as worker:
        assert worker.validator is not None
        assert not await worker.validator.validate_next()  # nothing waits for validation
    again = server.client.batches.retrieve(batch.id)
    assert (again.status, again.request_counts.total) == ("cancelled", 0)
    assert server.lead.requests == []


async def test_a_batch_whose_input_was_deleted_before_validation_fails_saying_so(
    server: Server, tmp_path: Path
) -> None:
    file_id = _upload(server.client, write_requests(tmp_path / "in.jsonl", 2))
    batch = _create(server.client, file_id)
    assert server.client.files.delete(file_id).deleted
    async with running_worker(server.settings) as worker:
        assert worker.validator is not None
        assert await worker.validator.validate_next()
    failed = server.client.batches.retrieve(batch.id)
    assert failed.status == "failed"
    ((error,),) = [failed.errors.data]
    assert (error.code, error.param, error.line) == ("file_not_found", "input_file_id", None)
    assert "deleted" in error.message


# ----------------------------------------------------------------- the claim, in the store


async def test_one_validator_holds_a_job_until_its_lease_expires_then_the_next_starts_over(
    store: BatchStore,
) -> None:
    job = await store.create_job(mode="llm", input_name="in.jsonl")
    first = await store.claim_validation("first", lease_s=30)
    assert first is not None and first.job.id == job.id and first.claims == 1
    assert await store.claim_validation("second", lease_s=30) is None  # held
    await store.add_items(first, [NewItem(1, "a", {}), NewItem(2, "b", {})])
    assert (await store.get_job(job.id)).total == 2

    # Its last checkpoint, then it dies: the lease runs out (a lease of 0 s, not a wait).
    await store.add_items(replace(first, lease_s=0.0), [NewItem(3, "c", {})])
    await asyncio.sleep(0.01)

    second = await store.claim_validation("second", lease_s=30)
    assert second is not None and second.claims == 2
    assert (await store.get_job(job.id)).total == 0  # what the first stored is gone
    assert (await store.progress(job.id)).total == 0
    for late in (
        store.add_items(first, [NewItem(4, "d", {})]),
        store.start_job(first),
        store.fail_job(first, []),
    ):
        with pytest.raises(ValidationLost):
            await late
    assert (await store.progress(job.id)).total == 0  # the late write left nothing
    await store.add_items(second, [NewItem(1, "a", {})])
    started = await store.start_job(second)
    assert (started.status, started.total) == ("in_progress", 1)
    assert await store.claim_validation("third", lease_s=0.0) is None  # started: not claimable


async def test_a_job_created_held_is_claimed_by_its_creator_alone_and_only_by_its_id(
    store: BatchStore,
) -> None:
    """``understudy batch submit`` creates its job held, then validates it inline: a worker
    running meanwhile must not take it, nor may the creator's own loop claim it a second time."""
    job = await store.create_job(mode="llm", input_name="in.jsonl", held_by=("cli", 30))
    assert await store.claim_validation("worker", lease_s=30) is None
    assert await store.claim_validation("cli", lease_s=30) is None  # not without its id
    claim = await store.claim_validation("cli", lease_s=30, job_id=job.id)
    assert claim is not None and (claim.job.id, claim.claims) == (job.id, 1)
    assert await store.claim_validation("worker", lease_s=30, job_id=job.id) is None


async def test_a_validation_handed_back_is_taken_over_at_once(store: BatchStore) -> None:
    claim = await validating(store)
    await store.add_items(claim, [NewItem(1, "a", {})])
    await store.release_validation(claim)
    again = await store.claim_validation("next", lease_s=30)
    assert again is not None and (again.job.id, again.claims) == (claim.job.id, 2)
    with pytest.raises(ValidationLost):
        await store.add_items(claim, [])


async def test_a_job_cancelled_mid_load_keeps_nothing_and_its_validator_stops(
    store: BatchStore, tmp_path: Path
) -> None:
    claim = await validating(store)
    loop = asyncio.get_running_loop()
    path = write_requests(tmp_path / "in.jsonl", 3 * CHUNK_ITEMS)

    class CancelledMidway:
        """The input, whose reader cancels the job during the second chunk."""

        def __init__(self) -> None:
            self.file = path.open("rb")
            self.lines = 0

        def readline(self, size: int = -1) -> bytes:
            self.lines += 1
            if self.lines == CHUNK_ITEMS + 10:
                asyncio.run_coroutine_threadsafe(store.cancel(claim.job.id), loop).result()
            return self.file.readline(size)

    stream = CancelledMidway()
    with pytest.raises(ValidationLost):
        await load_requests(
            store,
            claim,
            stream,  # type: ignore[arg-type]
            served=served_models(Catalog.default()),
            limits=BatchSettings(),
            request_limits=RequestLimits(),
        )
    stream.file.close()
    job = await store.get_job(claim.job.id)
    assert (job.status, job.total, job.finished_at is not None) == ("cancelled", 0, True)
    assert (await store.progress(job.id)).total == 0  # neither the first chunk nor the second
    assert stream.lines <= 2 * CHUNK_ITEMS + 1  # it stopped at the checkpoint after the cancel
    assert await store.claim_validation("next", lease_s=30) is None


async def test_a_validator_that_fails_unexpectedly_fails_the_job_and_goes_on(
    store: BatchStore, tmp_path: Path
) -> None:
    files, files_dir = FileStore(store.database), tmp_path / "files"
    with write_requests(tmp_path / "in.jsonl", 2).open("rb") as source:
        upload = await save_upload(
            files, files_dir, source, filename="in.jsonl", max_bytes=10**6, owner_key_id=None
        )
    broken = await store.create_job(mode="llm", input_name="in.jsonl", input_file_id=upload.id)
    fine = await store.create_job(mode="llm", input_name="in.jsonl", input_file_id=upload.id)
    served = iter([RuntimeError("a bug"), served_models(Catalog.default())])

    def served_once_broken() -> ServedModels:
        answer = next(served)
        if isinstance(answer, Exception):
            raise answer
        return answer

    validator = Validator(
        store,
        files,
        files_dir=files_dir,
        validator_id="v",
        settings=BatchSettings(),
        served=served_once_broken,
        request_limits=RequestLimits(),
    )
    assert await validator.validate_next() and await validator.validate_next()
    failed = await store.get_job(broken.id)
    assert failed.status == "failed" and failed.errors is not None
    assert [(e["code"], e["line"]) for e in failed.errors] == [("internal_error", None)]
    assert "in its log" in failed.errors[0]["message"]  # the bug's text stays in the log
    assert (await store.get_job(fine.id)).status == "in_progress"
