"""The distillation job queue on real SQLite and PostgreSQL: claims, leases, resumption."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from distill.jobs import DistillJobStore
from distill.progress import TrainingProgress
from distill.registry import NotInRegistry, RegistryError
from tests.helpers.stores import open_store

LEASE_S = 30.0


@pytest.fixture
async def jobs(database_url: str) -> AsyncIterator[DistillJobStore]:
    store = await open_store(DistillJobStore, database_url)
    yield store
    await store.database.close()


async def test_one_open_job_per_specialist(jobs: DistillJobStore) -> None:
    first = await jobs.enqueue("refund", proposal_id=None, trigger="auto")
    assert (first.status, first.trigger, first.attempts) == ("queued", "auto", 0)
    with pytest.raises(RegistryError, match="queued or running already"):
        await jobs.enqueue("refund")
    other = await jobs.enqueue("math")
    assert [job.id for job in await jobs.list()] == [other.id, first.id]


async def test_a_claimed_job_is_nobody_elses_until_its_lease_expires(
    jobs: DistillJobStore,
) -> None:
    queued = await jobs.enqueue("refund")
    claimed = await jobs.claim("worker-a", lease_s=LEASE_S, max_attempts=3)
    assert claimed is not None and claimed.id == queued.id
    assert (claimed.status, claimed.worker_id, claimed.attempts) == ("running", "worker-a", 1)
    assert await jobs.claim("worker-b", lease_s=LEASE_S, max_attempts=3) is None
    assert await jobs.renew(queued.id, "worker-a", lease_s=LEASE_S)

    await jobs.renew(queued.id, "worker-a", lease_s=-1)  # worker-a died: its lease ran out
    resumed = await jobs.claim("worker-b", lease_s=LEASE_S, max_attempts=3)
    assert resumed is not None and (resumed.worker_id, resumed.attempts) == ("worker-b", 2)

    await jobs.progress(queued.id, "worker-a", stage="train")  # the old worker: ignored
    assert not await jobs.renew(queued.id, "worker-a", lease_s=LEASE_S)
    stale = await jobs.finish(queued.id, "worker-a")
    assert stale.status == "running" and stale.worker_id == "worker-b"

    await jobs.progress(queued.id, "worker-b", stage="evaluate", adapter_path="/a/refund/x")
    done = await jobs.finish(queued.id, "worker-b")
    assert (done.status, done.stage, done.adapter_path) == ("succeeded", "evaluate", "/a/refund/x")
    assert done.finished_at is not None and done.worker_id is None
    await jobs.enqueue("refund")  # finished: a new one may start


async def test_a_job_whose_workers_keep_dying_is_failed(jobs: DistillJobStore) -> None:
    queued = await jobs.enqueue("refund")
    for worker in ("a", "b"):
        assert await jobs.claim(worker, lease_s=-1, max_attempts=2) is not None
    assert await jobs.claim("c", lease_s=LEASE_S, max_attempts=2) is None
    failed = await jobs.get(queued.id)
    assert failed.status == "failed" and "gave up after 2 attempts" in (failed.error or "")


async def test_release_requeues_and_cancel_stops(jobs: DistillJobStore) -> None:
    queued = await jobs.enqueue("refund")
    await jobs.claim("a", lease_s=LEASE_S, max_attempts=3)
    await jobs.release(queued.id, "a")
    assert (await jobs.get(queued.id)).status == "queued"
    await jobs.claim("b", lease_s=LEASE_S, max_attempts=3)
    cancelled = await jobs.cancel(queued.id)
    assert cancelled.status == "cancelled"
    assert not await jobs.renew(queued.id, "b", lease_s=LEASE_S)  # b stops at its next step
    with pytest.raises(RegistryError, match="cancelled already"):
        await jobs.cancel(queued.id)
    with pytest.raises(NotInRegistry):
        await jobs.get("no-such-job")


async def test_failure_keeps_the_error(jobs: DistillJobStore) -> None:
    queued = await jobs.enqueue("refund")
    await jobs.claim("a", lease_s=LEASE_S, max_attempts=3)
    failed = await jobs.finish(queued.id, "a", error="DatasetError: no usable transcripts")
    assert failed.status == "failed" and failed.error == "DatasetError: no usable transcripts"


async def test_concurrent_claims_hand_each_job_to_one_worker(jobs: DistillJobStore) -> None:
    for name in ("a", "b", "c"):
        await jobs.enqueue(name)
    claims = await asyncio.gather(
        *(jobs.claim(f"w{i}", lease_s=LEASE_S, max_attempts=3) for i in range(5))
    )
    claimed = [job.specialist for job in claims if job is not None]
    assert sorted(claimed) == ["a", "b", "c"]


async def test_training_progress_is_stored_for_the_worker_holding_the_job(
    jobs: DistillJobStore,
) -> None:
    queued = await jobs.enqueue("refund")
    await jobs.claim("worker-a", lease_s=LEASE_S, max_attempts=3)
    at = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    reading = TrainingProgress(4, 10, 0, at, at + timedelta(seconds=8), ((2, 1.5), (4, 1.25)))
    await jobs.record_training(queued.id, "worker-a", reading)
    await jobs.record_training(queued.id, "worker-b", replace(reading, step=9))  # not its job
    assert (await jobs.get(queued.id)).training == reading
    assert (await jobs.list())[0].training == reading
