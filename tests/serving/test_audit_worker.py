"""``understudy worker``'s ``audit`` loop as the worker runs it, from the settings: it drains
the queue with the settings' lead, and without a lead it leaves the queue alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from database import Database
from orchestrator.audits import AuditStore
from orchestrator.testing import ScriptedLead, reply
from serving.batch.store import WorkerInfo
from serving.settings import Settings
from serving.worker import WorkerContext, run_audits
from tests.evals.test_audit_drain import candidate


@pytest.fixture
async def audits(
    database_url: str, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[AuditStore]:
    """One queued audit (of "What is 1 + 7?", answered 8), and no local model to load."""
    monkeypatch.setenv("UNDERSTUDY_SLM_BACKEND", "vllm")
    database = await Database.open(database_url)
    store = AuditStore(database)
    await store.enqueue(candidate("run-a"))
    yield store
    await database.close()


def context(store: AuditStore, logged: list[str]) -> WorkerContext:
    return WorkerContext(
        settings=Settings(),
        database=store.database,
        info=WorkerInfo.this_process(),
        log=logged.append,
    )


async def test_the_audit_loop_drains_the_queue_with_the_settings_lead(
    audits: AuditStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ScriptedLead([reply("1 + 7 = 8")]) as lead:
        monkeypatch.setenv("UNDERSTUDY_LEAD_MODEL", "gpt-4o-mini")
        monkeypatch.setenv("UNDERSTUDY_LEAD_BASE_URL", lead.base_url)
        monkeypatch.setenv("UNDERSTUDY_LEAD_API_KEY", "sk-test")
        stop = asyncio.Event()
        loop = asyncio.create_task(run_audits(context(audits, []), stop))
        async with asyncio.timeout(60):
            while (await audits.list_audits())[0].status != "done":
                await asyncio.sleep(0.05)
        stop.set()
        await loop
    lead.assert_complete()
    (audit,) = await audits.list_audits()
    assert audit.agreed is True and audit.score == 1.0 and audit.cost_usd > 0


async def test_without_a_lead_the_audit_loop_says_so_and_leaves_the_queue(
    audits: AuditStore,
) -> None:
    logged: list[str] = []
    stop = asyncio.Event()
    loop = asyncio.create_task(run_audits(context(audits, logged), stop))
    async with asyncio.timeout(30):
        while not logged:
            await asyncio.sleep(0.05)
    stop.set()
    await loop
    assert "no lead is configured" in logged[0]
    (audit,) = await audits.list_audits()
    assert (audit.status, audit.attempts) == ("queued", 0)
