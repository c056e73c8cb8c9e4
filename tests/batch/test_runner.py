"""Running items: OpenAI output lines, attempts with backoff, and exactly-once after a crash —
the real orchestrator and transcript store, a scripted lead."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.responses import JSONResponse

from database import Database
from orchestrator.budget import RunBudget
from orchestrator.lead import LeadConfig
from orchestrator.outcome import FailureKind
from orchestrator.prerouter import MiniLMEmbedder, PreRouter
from orchestrator.run import Orchestrator
from orchestrator.testing import ScriptedLead, Step, failure, reply
from orchestrator.transcripts import TranscriptStore
from serving.batch.output import ERROR_STATUSES, OUTPUT_STATUSES, file_lines
from serving.batch.policy import DegradationPolicies
from serving.batch.runner import ItemRunner, RetryPolicy, run_id_for
from serving.batch.store import BatchStore, NewItem, WorkerInfo, WorkerStore
from serving.batch.worker import BatchWorker, batch_worker
from serving.keys import KeyStore
from serving.orchestration import open_orchestrator
from serving.protocol import OnDegraded, unanswered
from serving.settings import Settings
from specialists.catalog import Catalog
from specialists.vllm_client import VLLMBackend
from tests.batch.conftest import loaded_job, request_line
from tests.helpers.http_server import chat_completion, serve
from tests.helpers.stores import open_store

NO_WAIT = RetryPolicy(max_attempts=3, initial_s=0.0, max_s=0.0)


@dataclass
class Stack:
    transcripts: TranscriptStore
    batches: BatchStore
    orchestrator: Orchestrator

    def worker(
        self,
        job_id: str,
        *,
        retry: RetryPolicy = NO_WAIT,
        lease_s: float = 30.0,
        policies: DegradationPolicies | None = None,
    ):
        return BatchWorker(
            self.batches,
            WorkerStore(self.batches.database),
            ItemRunner(self.orchestrator, self.transcripts, retry, policies),
            info=WorkerInfo.this_process(),
            concurrency=4,
            lease_s=lease_s,
            poll_s=0.05,
            job_id=job_id,
        )

    async def job(
        self,
        prompts: list[str],
        *,
        mode: str = "llm",
        model: str = "gpt-4o-mini",
        owner_key_id: str | None = None,
        **extra: Any,
    ) -> str:
        """A started job of one line per prompt; ``extra``: more fields of every body."""
        items = [
            NewItem(
                line, f"q{line}", {**request_line(f"q{line}", prompt, model=model)["body"], **extra}
            )
            for line, prompt in enumerate(prompts, 1)
        ]
        return await loaded_job(self.batches, items, mode=mode, owner_key_id=owner_key_id)

    async def lines(self, job_id: str, statuses: tuple[str, ...]) -> list[dict]:
        return [json.loads(line) async for line in file_lines(self.batches, job_id, statuses)]

    async def run_count(self) -> int:
        return len(await self.transcripts.list_runs(limit=1000))


@asynccontextmanager
async def stack(
    database_url: str,
    lead: ScriptedLead,
    *,
    slm_url: str = "http://127.0.0.1:9/v1",
    **orchestrator: object,
) -> AsyncIterator[Stack]:
    """Stores, and an orchestrator whose SLM backend is at ``slm_url`` (default: nothing)."""
    transcripts = await open_store(TranscriptStore, database_url)
    backend = VLLMBackend(slm_url, base_model_name="none", max_retries=0)
    try:
        yield Stack(
            transcripts,
            BatchStore(transcripts.database),
            Orchestrator(
                catalog=Catalog.default(),
                backend=backend,
                lead=LeadConfig(model="gpt-4o-mini", base_url=lead.base_url, max_retries=0),
                store=transcripts,
                **orchestrator,  # type: ignore[arg-type]
            ),
        )
    finally:
        await backend.aclose()
        await transcripts.database.close()


async def test_a_job_runs_to_openai_output_lines_with_routing_metadata(
    database_url: str, lead: ScriptedLead
) -> None:
    async with stack(database_url, lead) as s:
        job_id = await s.job(["one", "two", "three"])
        await s.worker(job_id).run()
        job = await s.batches.get_job(job_id)
        assert job.status == "completed" and job.output_file_id and job.error_file_id is None
        lines = await s.lines(job_id, OUTPUT_STATUSES)
        assert [line["custom_id"] for line in lines] == ["q1", "q2", "q3"]
        first = lines[0]
        assert first["error"] is None and first["id"].startswith("batch_req_")
        body = first["response"]["body"]
        assert first["response"]["status_code"] == 200
        assert body["object"] == "chat.completion" and body["model"] == "gpt-4o-mini"
        assert body["choices"][0]["message"]["content"] == "ok"
        assert body["usage"] == {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}
        routing = first["understudy"]
        assert (routing["route"], routing["lead_tokens"], routing["slm_tokens"]) == ("lead", 25, 0)
        assert first["response"]["request_id"] == routing["run_id"]
        assert await s.run_count() == 3
        progress = await s.batches.progress(job_id)
        assert (progress.succeeded, progress.lead_tokens) == (3, 75)
    assert sorted(r["messages"][-1]["content"] for r in lead.requests) == ["one", "three", "two"]


async def test_an_item_recorded_before_a_crash_is_rebuilt_not_run_again(
    database_url: str, lead: ScriptedLead
) -> None:
    async with stack(database_url, lead) as s:
        job_id = await s.job(["first", "second"])
        # A worker claims both, records the first run's transcript, and dies before committing.
        held = await s.batches.claim("dead-worker", limit=2, lease_s=0.0)
        await s.orchestrator.run("first", "llm", run_id=run_id_for(held[0], 1))
        assert len(lead.requests) == 1
        await asyncio.sleep(0.01)

        await s.worker(job_id).run()

        assert len(lead.requests) == 2  # only the second request reached the lead again
        assert await s.run_count() == 2  # and no transcript was stored twice
        lines = await s.lines(job_id, OUTPUT_STATUSES)
        assert [line["custom_id"] for line in lines] == ["q1", "q2"]
        assert lines[0]["understudy"]["run_id"] == run_id_for(held[0], 1)


async def test_lead_failures_are_attempted_again_until_an_answer(database_url: str) -> None:
    script = [failure(500), failure(429), reply("ok", prompt_tokens=3, completion_tokens=2)]
    with ScriptedLead(script, model="gpt-4o-mini") as lead:
        async with stack(database_url, lead) as s:
            job_id = await s.job(["flaky"])
            await s.worker(job_id).run()
            (line,) = await s.lines(job_id, OUTPUT_STATUSES)
            assert line["response"]["body"]["choices"][0]["message"]["content"] == "ok"
            assert await s.run_count() == 3  # every attempt left its transcript
        lead.assert_complete()


async def test_an_item_that_keeps_failing_goes_to_the_error_file_with_the_reason(
    database_url: str,
) -> None:
    with ScriptedLead([failure(503)], repeat_last=True, model="gpt-4o-mini") as lead:
        async with stack(database_url, lead) as s:
            job_id = await s.job(["doomed"])
            await s.worker(job_id, retry=RetryPolicy(2, 0.0, 0.0)).run()
            (line,) = await s.lines(job_id, ERROR_STATUSES)
            assert line["custom_id"] == "q1"
            assert line["error"]["code"] == "upstream_unavailable"
            # The reason in our words; the upstream's error text stays in the transcript.
            message = line["error"]["message"]
            assert message == "No answer was produced: the lead model is unavailable."
            assert line["response"]["status_code"] == 503
            assert line["response"]["body"]["error"]["code"] == "upstream_unavailable"
            assert (await s.batches.get_job(job_id)).error_file_id
        assert len(lead.requests) == 2


async def test_a_request_the_lead_refuses_is_not_attempted_again(database_url: str) -> None:
    with ScriptedLead([failure(400)], repeat_last=True, model="gpt-4o-mini") as lead:
        async with stack(database_url, lead) as s:
            job_id = await s.job(["refused"])
            await s.worker(job_id).run()
            (line,) = await s.lines(job_id, ERROR_STATUSES)
            assert "the lead model refused the request" in line["error"]["message"]
        assert len(lead.requests) == 1


@pytest.mark.parametrize(
    ("step", "budget", "kind", "attempts"),
    [
        (failure(429), RunBudget(), FailureKind.lead_rate_limited, 2),
        (failure(500), RunBudget(), FailureKind.lead_unavailable, 2),
        (reply("late", delay_s=3), RunBudget(max_seconds=0.5), FailureKind.lead_timeout, 2),
        (failure(401), RunBudget(), FailureKind.lead_refused, 1),
        (failure(400), RunBudget(), FailureKind.lead_refused, 1),
        (
            reply("long", prompt_tokens=500),
            RunBudget(max_lead_tokens=100),
            FailureKind.budget_exhausted,
            1,
        ),
    ],
)
async def test_retry_is_decided_by_the_failures_kind(
    database_url: str, step: Step, budget: RunBudget, kind: FailureKind, attempts: int
) -> None:
    """Transient lead failures are attempted again; ones another attempt would repeat go to the
    error file at once. Either way the line says why, with the chat API's status and code."""
    with ScriptedLead([step], repeat_last=True, model="gpt-4o-mini") as lead:
        async with stack(database_url, lead, budget=budget) as s:
            job_id = await s.job(["q"])
            await s.worker(job_id, retry=RetryPolicy(2, 0.0, 0.0)).run()
            (line,) = await s.lines(job_id, ERROR_STATUSES)
            runs = await s.transcripts.list_runs()
        assert len(lead.requests) == attempts
    assert [run.failure.kind for run in runs] == [kind] * attempts  # each attempt recorded
    assert line["error"]["code"] == "upstream_unavailable"
    assert line["response"]["status_code"] == 503
    assert line["error"]["message"] == unanswered(runs[0]).message
    assert runs[0].error not in line["error"]["message"]  # never the upstream's own words
    assert line["response"]["request_id"] in {run.run_id for run in runs}


async def test_lines_with_a_response_format_get_checked_json_or_an_error_once(
    database_url: str,
) -> None:
    """A batch line's ``response_format`` reaches the lead like a chat request's; an answer
    that is not the JSON asked for goes to the error file, saying so, without another attempt."""

    def answer(body: dict[str, Any]) -> Step:
        good = body["messages"][-1]["content"] == "good"
        return reply('{"a": 1}' if good else "Not JSON at all.")

    with ScriptedLead([answer, answer], model="gpt-4o-mini") as lead:
        async with stack(database_url, lead) as s:
            job_id = await s.job(["good", "bad"], response_format={"type": "json_object"})
            await s.worker(job_id).run()
            (done,) = await s.lines(job_id, OUTPUT_STATUSES)
            (failed,) = await s.lines(job_id, ERROR_STATUSES)
            runs = await s.transcripts.list_runs()
        lead.assert_complete()
    assert json.loads(done["response"]["body"]["choices"][0]["message"]["content"]) == {"a": 1}
    assert failed["custom_id"] == "q2" and failed["response"]["status_code"] == 503
    assert "did not match the requested response_format" in failed["error"]["message"]
    assert sorted(run.failure.kind for run in runs if run.failure) == [FailureKind.invalid_format]
    assert [r["response_format"] for r in lead.requests] == [{"type": "json_object"}] * 2


async def test_a_run_another_worker_recorded_meanwhile_is_replayed_not_answered_twice(
    database_url: str,
) -> None:
    """The item's first claim (no crash to suspect), yet its attempt is recorded when the run
    ends — by a worker whose lease ran out: the recorded run is the item's answer."""
    with ScriptedLead([reply("recorded"), reply("late")], model="gpt-4o-mini") as lead:
        async with stack(database_url, lead) as s:
            await s.job(["q"])
            (item,) = await s.batches.claim("w", limit=1, lease_s=30)
            assert item.claims == 1
            await s.orchestrator.run("q", "llm", run_id=run_id_for(item, 1))  # the other worker

            result = await ItemRunner(s.orchestrator, s.transcripts, NO_WAIT).run(item)

            assert result.succeeded and result.run is not None
            assert result.run.run_id == run_id_for(item, 1) and result.run.answer == "recorded"
            body = json.loads(result.output)["response"]["body"]
            assert body["choices"][0]["message"]["content"] == "recorded"
            assert await s.run_count() == 1  # the late answer was not recorded a second time
        assert len(lead.requests) == 2


class CountingGate:
    """A lead gate that admits every call and adds up the tokens it is told about."""

    def __init__(self) -> None:
        self.calls = 0
        self.tokens = 0

    @asynccontextmanager
    async def call(self, estimated_tokens: int) -> AsyncIterator[CountingGate]:
        assert estimated_tokens > 0
        self.calls += 1
        yield self

    def used(self, tokens: int) -> None:
        self.tokens += tokens


async def test_every_lead_call_passes_the_gate_with_its_real_token_count(
    database_url: str, lead: ScriptedLead
) -> None:
    gate = CountingGate()
    async with stack(database_url, lead, lead_gate=gate) as s:
        job_id = await s.job(["a", "b"])
        await s.worker(job_id).run()
    assert (gate.calls, gate.tokens) == (2, 50)


async def test_a_stopped_worker_hands_back_what_it_holds(database_url: str) -> None:
    slow = ScriptedLead([reply("late", delay_s=1)], repeat_last=True, model="gpt-4o-mini")
    with slow:
        async with stack(database_url, slow) as s:
            job_id = await s.job(["a", "b", "c"])
            stop = asyncio.Event()
            running = asyncio.create_task(s.worker(job_id).run(stop))
            while len(slow.requests) < 3:
                await asyncio.sleep(0.01)
            stop.set()
            await asyncio.wait_for(running, 10)
            progress = await s.batches.progress(job_id)
            assert (progress.pending, progress.running) == (3, 0)
            assert await s.run_count() == 0


async def test_cascade_answers_without_the_lead_where_a_specialist_is_sure_and_counts_savings(
    database_url: str, lead: ScriptedLead, smollm2_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real pre-router and SmolLM2, asked for a number only so its answer ends within its
    # token limit (a cut-off draft is never accepted); the math specialist accepts whatever it
    # says.
    accept_math = {"math": {"confidence_threshold": 0.0, "validator": "nonempty"}}
    for name, value in {
        "DATABASE_URL": database_url,
        "LEAD_BASE_URL": lead.base_url,
        "LEAD_MODEL": "gpt-4o-mini",
        "SLM_BASE_MODEL": str(smollm2_dir),
        "SLM_DEVICE": "cpu",
        "SPECIALISTS": json.dumps(accept_math),
    }.items():
        monkeypatch.setenv(f"UNDERSTUDY_{name}", value)
    settings = Settings()
    async with (
        await Database.open(settings.database_url) as database,
        open_orchestrator(settings, database) as orchestrator,
    ):
        batches = BatchStore(orchestrator.store.database)
        prompts = [
            "What is 17 * 24? Answer with the number only.",
            "Tell me a story about the sea and the moon.",
        ]
        job_id = await loaded_job(
            batches,
            [
                NewItem(n, f"q{n}", request_line(f"q{n}", p)["body"])
                for n, p in enumerate(prompts, 1)
            ],
            mode="cascade",
        )
        info = WorkerInfo.this_process()
        await batch_worker(settings.batch, orchestrator, info=info, job_id=job_id).run()
        progress = await batches.progress(job_id)
        lines = [json.loads(x) async for x in file_lines(batches, job_id, OUTPUT_STATUSES)]
    math, story = (line["understudy"] for line in lines)
    assert (math["route"], math["lead_tokens"]) == ("cascade:accepted:math", 0)
    assert math["slm_tokens"] > 0 and story["lead_tokens"] == 25
    assert (progress.succeeded, progress.answered_without_lead) == (2, 1)
    assert 0 < progress.cost_usd < progress.lead_only_cost_usd  # the specialist's answer saved
    assert progress.saved_usd == pytest.approx(progress.lead_only_cost_usd - progress.cost_usd)


async def test_a_line_asking_for_errors_on_degraded_answers_gets_a_degraded_error(
    database_url: str,
) -> None:
    """The lead is down, the specialist answers: a degraded answer, unless the line's
    ``understudy.on_degraded`` says ``error``; either way the run is recorded."""

    async def slm(_path: str, _body: dict) -> JSONResponse:
        return chat_completion("4", [math.log(0.9)])

    with serve(slm) as (root, _seen), ScriptedLead([failure(500)], repeat_last=True) as lead:
        prerouter = PreRouter(Catalog.default(), MiniLMEmbedder())
        async with stack(database_url, lead, slm_url=f"{root}/v1", prerouter=prerouter) as s:
            took = await s.job(["What is 2 + 2?"], mode="router")
            refused = await s.job(
                ["What is 2 + 2?"], mode="router", understudy={"on_degraded": "error"}
            )
            await s.worker(took).run()
            await s.worker(refused).run()
            (answered,) = await s.lines(took, OUTPUT_STATUSES)
            (error,) = await s.lines(refused, ERROR_STATUSES)
            runs = await s.transcripts.list_runs()
    assert answered["response"]["body"]["choices"][0]["message"]["content"] == "4"
    assert answered["response"]["body"]["understudy"]["degraded"] is True
    assert error["error"]["code"] == "degraded" and error["response"]["status_code"] == 503
    assert [run.answer for run in runs if run.degraded] == ["4", "4"]  # both recorded


@pytest.mark.parametrize("server", [OnDegraded.degrade, OnDegraded.error])
async def test_a_line_without_a_policy_follows_its_batch_keys_then_the_servers(
    database_url: str, server: OnDegraded
) -> None:
    """As in the chat API: the line's own policy, else the policy of the key that created the
    batch, else the server's setting; each job's one line degrades (lead down)."""

    async def slm(_path: str, _body: dict) -> JSONResponse:
        return chat_completion("4", [math.log(0.9)])

    with serve(slm) as (root, _seen), ScriptedLead([failure(500)], repeat_last=True) as lead:
        prerouter = PreRouter(Catalog.default(), MiniLMEmbedder())
        async with stack(database_url, lead, slm_url=f"{root}/v1", prerouter=prerouter) as s:
            keys = KeyStore(s.transcripts.database)
            strict, _ = await keys.create("strict", on_degraded=OnDegraded.error)
            lenient, _ = await keys.create("lenient", on_degraded=OnDegraded.degrade)
            plain, _ = await keys.create("plain")
            deleted = "key_deleted_since"
            owners = [strict.id, lenient.id, plain.id, None, deleted]
            jobs = [await s.job(["What is 2 + 2?"], mode="router", owner_key_id=o) for o in owners]
            overridden = await s.job(
                ["What is 2 + 2?"],
                mode="router",
                owner_key_id=strict.id,
                understudy={"on_degraded": "degrade"},
            )
            policies = DegradationPolicies(keys, server)
            for job in [*jobs, overridden]:
                await s.worker(job, policies=policies).run()

            async def refused(job: str) -> bool:
                errors = await s.lines(job, ERROR_STATUSES)
                assert all(line["error"]["code"] == "degraded" for line in errors)
                return bool(errors)

            outcomes = [await refused(job) for job in jobs]
            assert not await refused(overridden)  # the line decides last
    by_server = server is OnDegraded.error
    assert outcomes == [True, False, by_server, by_server, by_server]
