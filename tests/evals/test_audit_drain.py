"""Live audits end to end: serving runs queue the audited share of unchecked specialist
answers, the drain re-asks the lead and judges agreement, and the figures come out as scripted.

The specialist is the real vLLM client against a scripted vLLM server whose agreement with the
truth is scripted per question; the lead — the judge of truth — is the scripted lead. The
stores are real, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from database import Database
from evals.audits import AuditDrain
from orchestrator.audits import (
    AuditCandidate,
    AuditPolicy,
    AuditSampler,
    AuditStore,
    ServedVersion,
    WindowCounts,
    is_selected,
    live_figures,
    wilson_interval,
)
from orchestrator.lead import LeadConfig
from orchestrator.run import Orchestrator
from orchestrator.testing import ScriptedLead, Step, failure, reply, tool_calls
from orchestrator.transcripts import TranscriptStore
from specialists import Catalog
from specialists.vllm_client import VLLMBackend
from tests.helpers.http_server import chat_completion, serve
from tests.helpers.stores import open_store

RUNS = 40
RATE = 0.4
CATALOG = Catalog.default()


def question(i: int) -> str:
    return f"What is {i} + 7?"


def agrees(i: int) -> bool:
    """The specialist's scripted agreement with the truth: 80 %."""
    return i % 5 != 0


def truth(text: str) -> int:
    a, b = (int(n) for n in re.findall(r"\d+", text)[-2:])
    return a + b


async def specialist(path: str, body: dict[str, Any]) -> Any:
    """A vLLM server whose math answers are right exactly where :func:`agrees` says."""
    asked = body["messages"][-1]["content"]
    i = int(re.findall(r"\d+", asked)[0])
    answer = truth(asked) + (0 if agrees(i) else 1)
    return chat_completion(f"Answer: {answer}", [math.log(0.99)], model=body["model"])


def the_truth(body: dict[str, Any]) -> Step:
    """The lead answers every audit with the right sum."""
    return reply(f"The answer is {truth(body['messages'][-1]['content'])}.")


def lead_for(scripted: ScriptedLead) -> LeadConfig:
    return LeadConfig(
        model="gpt-4o-mini", base_url=scripted.base_url, api_key="sk-test", max_retries=0
    )


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    opened = await Database.open(database_url)
    yield opened
    await opened.close()


def candidate(run_id: str, i: int = 1) -> AuditCandidate:
    return AuditCandidate(
        run_id=run_id,
        specialist="math",
        version="base",
        judge="numeric_answer",
        messages=[{"role": "user", "content": question(i)}],
        answer=f"Answer: {i + 7}",
        source="slm",
    )


async def test_runs_queue_at_the_rate_the_drain_settles_them_and_the_figures_follow(
    database: Database,
) -> None:
    policy = AuditPolicy(rate=RATE, floor=RATE)
    audits = AuditStore(database)
    transcripts = TranscriptStore(database)
    with serve(specialist) as (root, _), ScriptedLead([the_truth], repeat_last=True) as lead:
        backend = VLLMBackend(f"{root}/v1", base_model_name="smollm2-135m", timeout_s=5.0)
        serving = Orchestrator(
            catalog=CATALOG,
            backend=backend,
            lead=lead_for(lead),
            store=transcripts,
            audits=AuditSampler(audits, policy),
        )
        for i in range(RUNS):  # slm and cascade alternately; the cascade accepts every draft
            mode = "slm" if i % 2 else "cascade"
            await serving.run(question(i), mode, specialist="math", run_id=f"run-{i}")
        assert lead.requests == []  # no lead checked any of these answers

        selected = [i for i in range(RUNS) if is_selected(f"run-{i}", RATE)]
        queued = await audits.list_audits(limit=RUNS)
        assert sorted(a.run_id for a in queued) == sorted(f"run-{i}" for i in selected)
        assert {(a.status, a.version) for a in queued} == {("queued", "base")}
        assert {a.source for a in queued} == {"slm", "cascade"}

        asking = Orchestrator(catalog=CATALOG, backend=backend, lead=lead_for(lead))
        drain = AuditDrain(audits, asking, worker_id="w1", lease_s=60, min_rouge=0.4)
        while await drain.drain_one():
            pass
        await backend.aclose()

    # the lead was asked each audited request once, as the user asked it
    asked = sorted(r["messages"][-1]["content"] for r in lead.requests)
    assert asked == sorted(question(i) for i in selected)
    settled = await audits.list_audits(limit=RUNS)
    assert all(a.status == "done" and a.cost_usd > 0 for a in settled)
    assert {a.run_id: a.agreed for a in settled} == {f"run-{i}": agrees(i) for i in selected}

    agreements = sum(agrees(i) for i in selected)
    counts = await audits.window_counts(window=500, days=30)
    assert counts == {("math", "base"): WindowCounts(len(selected), agreements)}
    for run_id in ("run-0", "run-1"):
        await transcripts.add_feedback(run_id, -1.0)
    figures = await live_figures(audits, [ServedVersion("math", "base")], policy)
    stats = figures["math"]
    assert stats.audits == len(selected) and stats.agreements == agreements
    assert stats.precision == agreements / len(selected)
    assert stats.interval == wilson_interval(agreements, len(selected))
    assert stats.escalation_rate == 0.0  # RUNS / 2 cascade attempts, all accepted
    assert stats.negative_feedback_rate == 2 / RUNS


async def test_a_lead_passing_a_specialist_answer_on_is_audited_one_that_checks_is_not(
    database: Database,
) -> None:
    audits = AuditStore(database)
    passed_on = [
        tool_calls(("math_specialist", {"request": question(3)})),
        reply("Answer: 10"),  # the specialist's answer, verbatim
    ]
    rewritten = [
        tool_calls(("math_specialist", {"request": question(4)})),
        reply("3 + 7 is 11."),
    ]
    with serve(specialist) as (root, _), ScriptedLead(passed_on + rewritten) as lead:
        backend = VLLMBackend(f"{root}/v1", base_model_name="smollm2-135m", timeout_s=5.0)
        serving = Orchestrator(
            catalog=CATALOG,
            backend=backend,
            lead=lead_for(lead),
            store=TranscriptStore(database),
            audits=AuditSampler(audits, AuditPolicy(rate=1.0, floor=1.0)),
        )
        await serving.run(question(3), "router", run_id="passed-on")
        await serving.run(question(4), "router", run_id="rewritten")
        await backend.aclose()
    (queued,) = await audits.list_audits()
    assert (queued.run_id, queued.source, queued.specialist) == ("passed-on", "router", "math")
    claimed = await audits.claim("w", lease_s=60)
    assert claimed is not None  # the specialist call's own confidence, kept for re-fits
    assert claimed.candidate.confidence is not None and 0 < claimed.candidate.confidence <= 1


async def test_a_failed_lead_call_leaves_the_audit_queued_for_another_try(
    database: Database,
) -> None:
    audits = AuditStore(database)
    assert await audits.enqueue(candidate("run-a"))
    assert not await audits.enqueue(candidate("run-a"))  # a replayed run is queued once
    with ScriptedLead([failure(500), the_truth]) as lead:
        asking = Orchestrator(catalog=CATALOG, backend=_unused_backend(), lead=lead_for(lead))
        drain = AuditDrain(audits, asking, worker_id="w1", lease_s=60, min_rouge=0.4)
        assert await drain.drain_one()
        (first,) = await audits.list_audits()
        assert (first.status, first.attempts, first.agreed) == ("queued", 1, None)
        assert first.error
        assert await drain.drain_one()
        assert not await drain.drain_one()
    lead.assert_complete()
    (settled,) = await audits.list_audits()
    assert (settled.status, settled.attempts, settled.agreed) == ("done", 2, True)
    assert settled.cost_usd > 0


async def test_a_lead_that_keeps_failing_ends_the_audit_after_its_attempts(
    database: Database,
) -> None:
    audits = AuditStore(database)
    await audits.enqueue(candidate("run-a"))
    with ScriptedLead([failure(503), failure(503)]) as lead:
        asking = Orchestrator(catalog=CATALOG, backend=_unused_backend(), lead=lead_for(lead))
        drain = AuditDrain(
            audits, asking, worker_id="w1", lease_s=60, min_rouge=0.4, max_attempts=2
        )
        while await drain.drain_one():
            pass
    lead.assert_complete()
    (given_up,) = await audits.list_audits()
    assert (given_up.status, given_up.attempts, given_up.agreed) == ("failed", 2, None)
    assert (await audits.window_counts(window=500, days=30)) == {}  # counted in no figure


async def test_two_workers_never_audit_the_same_answer(database_url: str) -> None:
    """Two worker processes: two databases opened on the same one."""
    first = await open_store(AuditStore, database_url)
    second = await open_store(AuditStore, database_url, migrate=False)
    try:
        for n in range(30):
            await first.enqueue(candidate(f"run-{n}", n))

        async def claim_all(store: AuditStore, worker: str) -> list[int]:
            claimed = []
            while (audit := await store.claim(worker, lease_s=60)) is not None:
                claimed.append(audit.id)
            return claimed

        mine, theirs = await asyncio.gather(claim_all(first, "w1"), claim_all(second, "w2"))
        assert not set(mine) & set(theirs) and len(mine) + len(theirs) == 30
    finally:
        await first.database.close()
        await second.database.close()


async def test_a_claim_whose_lease_expired_is_taken_over_and_the_old_one_cannot_settle(
    database: Database,
) -> None:
    audits = AuditStore(database)
    await audits.enqueue(candidate("run-a"))
    stale = await audits.claim("w1", lease_s=0)  # its worker stopped renewing at once
    fresh = await audits.claim("w2", lease_s=60)
    assert stale is not None and fresh is not None and fresh.id == stale.id
    assert not await audits.retry(stale, 0.01, "too late")
    (row,) = await audits.list_audits()
    assert (row.status, row.attempts, row.cost_usd) == ("running", 2, 0.0)


def _unused_backend() -> VLLMBackend:
    """A specialist backend ``llm`` runs never call (an Orchestrator needs one)."""
    return VLLMBackend("http://127.0.0.1:9/v1", base_model_name="smollm2-135m")
