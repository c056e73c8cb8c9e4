"""BatchStore on SQLite and PostgreSQL: items in, claimed once, leased, committed once, out in
order."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from orchestrator.outcome import Failure, FailureKind, RunResult
from serving.batch.store import (
    BatchNotFound,
    BatchStore,
    ClaimedItem,
    ItemResult,
    NewItem,
    WorkerInfo,
    WorkerStore,
)
from tests.batch.conftest import loaded_job, validating
from tests.helpers.stores import open_store


async def _job_with(store: BatchStore, count: int) -> str:
    items = [NewItem(line, f"c{line}", {"n": line}) for line in range(1, count + 1)]
    return await loaded_job(store, items)


async def _complete(store: BatchStore, item: ClaimedItem, result: ItemResult) -> bool:
    (committed,) = await store.complete([(item, result)])
    return committed


def _run(
    run_id: str,
    answer: str | None,
    *,
    lead_tokens: int = 0,
    slm_tokens: int = 0,
    cost_usd: float = 0.0,
    lead_only_cost_usd: float = 0.0,
) -> RunResult:
    """A run with these figures (tokens all on the input side)."""
    failure = None if answer is not None else Failure(FailureKind.lead_unavailable, "down")
    return RunResult(
        run_id=run_id,
        mode="cascade",
        answer=answer,
        route="lead",
        specialists=[],
        escalated=False,
        degraded=False,
        confidence=None,
        lead_input_tokens=lead_tokens,
        lead_output_tokens=0,
        slm_prompt_tokens=slm_tokens,
        slm_completion_tokens=0,
        cost_usd=cost_usd,
        lead_only_cost_usd=lead_only_cost_usd,
        latency_ms=1.0,
        failure=failure,
    )


def _ok(item: ClaimedItem, **figures: Any) -> ItemResult:
    return ItemResult(json.dumps({"line": item.line}), _run(f"run{item.line}", "ok", **figures))


async def test_duplicate_custom_ids_are_refused_and_reported_by_line(store: BatchStore) -> None:
    claim = await validating(store)
    job = claim.job
    first = [NewItem(1, "a", {}), NewItem(2, "b", {}), NewItem(3, "a", {})]
    assert await store.add_items(claim, first) == [3]  # within one chunk
    assert await store.add_items(claim, [NewItem(4, "b", {}), NewItem(5, "c", {})]) == [4]
    assert await store.line_of(job.id, "a") == 1
    # An invalid line is stored as failed, whatever its custom_id.
    assert await store.add_items(claim, [NewItem(6, "a", None, output='{"error": 1}')]) == []
    progress = await store.progress(job.id)
    assert (progress.pending, progress.failed) == (3, 1)
    assert (await store.get_job(job.id)).total == 4  # what is stored so far: progress


async def test_a_validating_job_is_invisible_to_workers(store: BatchStore) -> None:
    claim = await validating(store)
    await store.add_items(claim, [NewItem(1, "a", {})])
    assert await store.claim("w", limit=10, lease_s=30) == []
    await store.start_job(claim)
    assert [item.custom_id for item in await store.claim("w", limit=10, lease_s=30)] == ["a"]


async def test_claims_come_in_input_order_and_never_overlap(store: BatchStore) -> None:
    job_id = await _job_with(store, 10)
    first = await store.claim("w1", limit=4, lease_s=30)
    second = await store.claim("w2", limit=4, lease_s=30)
    third = await store.claim("w3", limit=4, lease_s=30)
    assert [i.line for i in first] == [1, 2, 3, 4]
    assert [i.line for i in second] == [5, 6, 7, 8]
    assert [i.line for i in third] == [9, 10]
    assert {i.claims for i in first + second + third} == {1}
    assert all(i.mode == "llm" and i.job_id == job_id for i in first)
    assert await store.claim("w4", limit=4, lease_s=30) == []


async def test_concurrent_claims_from_separate_connections_split_the_items(
    database_url: str, store: BatchStore
) -> None:
    await _job_with(store, 200)
    others = [await open_store(BatchStore, database_url, migrate=False) for _ in range(4)]
    try:

        async def drain(worker: BatchStore, name: str) -> list[int]:
            lines: list[int] = []
            while batch := await worker.claim(name, limit=7, lease_s=30):
                lines.extend(item.line for item in batch)
            return lines

        claimed = await asyncio.gather(*(drain(o, f"w{i}") for i, o in enumerate(others)))
    finally:
        for other in others:
            await other.database.close()
    every = [line for lines in claimed for line in lines]
    assert sorted(every) == list(range(1, 201))  # each item exactly once


async def test_an_expired_lease_is_claimed_again_and_the_old_claim_cannot_commit(
    store: BatchStore,
) -> None:
    await _job_with(store, 3)
    stale = await store.claim("dead", limit=3, lease_s=0.0)
    await asyncio.sleep(0.01)
    taken = await store.claim("alive", limit=3, lease_s=30)
    assert [(i.line, i.claims) for i in taken] == [(1, 2), (2, 2), (3, 2)]
    assert not await _complete(store, stale[0], _ok(stale[0]))  # the dead worker's late result
    assert await _complete(store, taken[0], _ok(taken[0]))
    assert not await _complete(store, taken[0], _ok(taken[0]))  # committed exactly once
    # In one transaction, each result is judged on its own claim.
    assert await store.complete([(stale[1], _ok(stale[1])), (taken[1], _ok(taken[1]))]) == [
        False,
        True,
    ]
    assert (await store.progress(taken[0].job_id)).succeeded == 2


async def test_heartbeats_keep_leases_and_count_live_workers(store: BatchStore) -> None:
    await _job_with(store, 2)
    workers = WorkerStore(store.database)
    one, two = WorkerInfo.this_process(), WorkerInfo.this_process()
    assert one.id != two.id
    assert await workers.heartbeat(one, lease_s=30) == 1
    held = await store.claim(one.id, limit=2, lease_s=0.05)
    assert await workers.heartbeat(two, lease_s=30) == 2
    await workers.heartbeat(one, lease_s=30)  # renews the 50 ms leases to 30 s
    await asyncio.sleep(0.1)
    assert await store.claim(two.id, limit=2, lease_s=30) == []
    await workers.release(one.id)  # a clean stop hands them back at once
    assert [i.line for i in await store.claim(two.id, limit=2, lease_s=30)] == [
        i.line for i in held
    ]


async def test_progress_sums_tokens_cost_and_answers_without_the_lead(store: BatchStore) -> None:
    job_id = await _job_with(store, 4)
    items = await store.claim("w", limit=4, lease_s=30)
    await _complete(store, items[0], _ok(items[0], slm_tokens=10, cost_usd=0.001))
    await _complete(
        store, items[1], _ok(items[1], lead_tokens=100, cost_usd=0.01, lead_only_cost_usd=0.02)
    )
    await _complete(
        store, items[2], ItemResult("{}", _run("r", None, lead_tokens=5, cost_usd=0.002))
    )
    progress = await store.progress(job_id)
    assert (progress.succeeded, progress.failed, progress.running) == (2, 1, 1)
    assert (progress.lead_tokens, progress.slm_tokens) == (105, 10)
    assert progress.cost_usd == pytest.approx(0.013)
    assert progress.answered_without_lead == 1


async def test_jobs_finish_when_nothing_is_left_and_outputs_come_in_input_order(
    store: BatchStore,
) -> None:
    job_id = await _job_with(store, 5)
    items = await store.claim("w", limit=5, lease_s=30)
    for item in reversed(items[1:]):
        await _complete(store, item, _ok(item))
    assert await store.finish_jobs() == []
    await _complete(store, items[0], ItemResult('{"failed": 1}'))
    assert await store.finish_jobs() == [job_id]
    assert (await store.get_job(job_id)).status == "completed"
    outputs = [o async for o in store.outputs(job_id, statuses=("succeeded",), chunk=2)]
    assert [o.line for o in outputs] == [2, 3, 4, 5]
    assert outputs[0].output == '{"line": 2}'
    failed = [o async for o in store.outputs(job_id, statuses=("failed",))]
    assert [(o.line, o.custom_id) for o in failed] == [(1, "c1")]


async def test_cancel_stops_pending_items_and_waits_for_running_ones(store: BatchStore) -> None:
    job_id = await _job_with(store, 4)
    running = await store.claim("w", limit=1, lease_s=30)
    job = await store.cancel(job_id)
    assert job.status == "cancelling"
    assert await store.claim("w", limit=4, lease_s=30) == []
    await _complete(store, running[0], _ok(running[0]))
    assert await store.finish_jobs() == [job_id]
    progress = await store.progress(job_id)
    assert (progress.succeeded, progress.cancelled) == (1, 3)
    assert (await store.get_job(job_id)).status == "cancelled"
    assert (await store.cancel(job_id)).status == "cancelled"  # idempotent


async def test_a_cancelled_job_whose_worker_died_still_finishes(store: BatchStore) -> None:
    job_id = await _job_with(store, 2)
    await store.claim("dead", limit=2, lease_s=0.0)
    await asyncio.sleep(0.01)
    assert (await store.cancel(job_id)).status == "cancelled"
    assert (await store.progress(job_id)).cancelled == 2


async def test_failing_validation_deletes_the_items(store: BatchStore) -> None:
    claim = await validating(store)
    await store.add_items(claim, [NewItem(1, "a", {})])
    errors = [{"line": 2, "code": "invalid_json", "message": "not valid JSON"}]
    failed = await store.fail_job(claim, errors)
    assert (failed.status, failed.errors, failed.finished) == ("failed", errors, True)
    assert (await store.progress(claim.job.id)).total == 0


async def test_jobs_list_newest_first_with_a_cursor(store: BatchStore) -> None:
    ids = [(await store.create_job(mode="llm", input_name=f"{i}.jsonl")).id for i in range(3)]
    first = await store.list_jobs(limit=2)
    assert [job.id for job in first] == ids[::-1][:2]
    assert [job.id for job in await store.list_jobs(limit=2, after=first[-1].id)] == [ids[0]]
    with pytest.raises(BatchNotFound):
        await store.get_job("batch_missing")


async def test_progress_of_several_jobs_is_each_jobs_own(store: BatchStore) -> None:
    busy, idle = await _job_with(store, 3), await _job_with(store, 2)
    (item,) = await store.claim("w", limit=1, lease_s=30)
    await _complete(store, item, _ok(item, lead_tokens=7, cost_usd=0.5))
    many = await store.progress_many([busy, idle, "batch_unknown"])
    assert many == {
        busy: await store.progress(busy),
        idle: await store.progress(idle),
        "batch_unknown": await store.progress("batch_unknown"),
    }
    assert (many[busy].succeeded, many[busy].pending, many[busy].lead_tokens) == (1, 2, 7)
    assert (many[idle].pending, many[idle].cost_usd) == (2, 0.0)
    assert many["batch_unknown"].total == 0
