"""The four modes end to end: real SDK, real tools, real SmolLM2 on the local backend, a real
database (SQLite and PostgreSQL) — only the paid lead is a scripted HTTP server."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.budget import RunBudget
from orchestrator.cost import PriceBook
from orchestrator.lead import LeadConfig
from orchestrator.options import CallOptions
from orchestrator.outcome import FailureKind
from orchestrator.request import InvalidRequest, OverLimit, RequestLimits
from orchestrator.run import Orchestrator
from orchestrator.testing import ScriptedLead, failure, reply, tool_calls
from orchestrator.transcripts import RunAlreadyRecorded, TranscriptStore
from specialists import Catalog, ConfigurationError
from specialists.local import LocalBackend
from specialists.sampling import Sampling
from specialists.vllm_client import VLLMBackend
from tests.helpers.http_server import free_port
from tests.helpers.stores import open_store

SHORT = {"generation": {"max_tokens": 24}}


SHORT_MATH = "What is 12 + 30? Answer with the number only."
"""A question SmolLM2 answers within ``SHORT``'s token limit."""


def capped(max_tokens: int) -> CallOptions:
    """Options that cap the answer at ``max_tokens``."""
    return CallOptions(Sampling(max_tokens=max_tokens))


def catalog(**math: object) -> Catalog:
    """The default catalog with short answers (fast on CPU) and the given math overrides."""
    return Catalog.default().with_overrides(
        {"math": {**SHORT, **math}, "email": SHORT, "code": SHORT}
    )


@pytest.fixture(scope="module")
async def smollm2(smollm2_dir: Path) -> AsyncIterator[LocalBackend]:
    backend = LocalBackend(smollm2_dir, base_ref="smollm2-135m")
    yield backend
    await backend.aclose()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[TranscriptStore]:
    opened = await open_store(TranscriptStore, database_url)
    yield opened
    await opened.database.close()


def lead_for(scripted: ScriptedLead, **kwargs: object) -> LeadConfig:
    kwargs.setdefault("max_retries", 0)
    return LeadConfig(model="gpt-4o-mini", base_url=scripted.base_url, api_key="sk-test", **kwargs)


async def test_router_records_lead_calls_and_tool_calls(
    smollm2: LocalBackend, store: TranscriptStore
) -> None:
    script = [
        tool_calls(("math_specialist", {"request": "What is 17 * 24?"})),
        tool_calls(("calculator", {"expression": "17*24"})),
        reply("17 × 24 = 408"),
    ]
    with ScriptedLead(script) as lead:
        orchestrator = Orchestrator(
            catalog=catalog(), backend=smollm2, lead=lead_for(lead), store=store
        )
        result = await orchestrator.run("What is 17 * 24?", "router")
    lead.assert_complete()
    assert result.answer == "17 × 24 = 408" and result.route == "router"
    assert result.specialists == ["math"] and result.lead_tokens > 0 and result.slm_tokens > 0
    assert result.cost_usd > 0
    run = await store.get_run(result.run_id)
    assert [c.model for c in run.lead_calls] == ["gpt-4o-mini"] * 3
    assert run.lead_calls[0].messages[0]["role"] == "system"  # the full input, instructions too
    assert run.lead_calls[0].output[0]["tool_calls"] or run.lead_calls[0].output
    assert all(c.input_tokens > 0 and c.cost_usd > 0 for c in run.lead_calls)
    math_call, calc_call = run.tool_calls
    assert math_call.name == "math_specialist" and math_call.confidence is not None
    assert math_call.input == {"request": "What is 17 * 24?"} and math_call.output
    assert calc_call.name == "calculator" and calc_call.output == "408"
    # the lead saw the specialist's answer with its confidence, then the calculator's
    second_request = lead.requests[1]["messages"]
    assert any('"confidence"' in str(m.get("content")) for m in second_request)


async def test_cascade_accepts_a_confident_valid_answer_without_the_lead(
    smollm2: LocalBackend, store: TranscriptStore
) -> None:
    with ScriptedLead([]) as lead:
        orchestrator = Orchestrator(
            catalog=catalog(confidence_threshold=0.0),
            backend=smollm2,
            lead=lead_for(lead),
            store=store,
        )
        # Asked for the number only, SmolLM2 ends its answer well within its 24 tokens: a draft
        # cut at its limit is never accepted (test_a_truncated_draft_is_escalated).
        result = await orchestrator.run(SHORT_MATH, "cascade", specialist="math")
    assert lead.requests == []
    assert result.route == "cascade:accepted:math" and not result.escalated
    assert result.finish_reason == "stop"
    assert result.lead_tokens == 0 and result.slm_tokens > 0 and result.answer
    assert result.saved_usd > 0  # the same tokens on gpt-4o-mini would have cost more
    run = await store.get_run(result.run_id)
    assert run.lead_calls == [] and run.tool_calls[0].confidence == pytest.approx(result.confidence)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"confidence_threshold": 1.0}, "is below 1.00"),
        ({"confidence_threshold": 0.0, "validator": "python_function"}, "format check failed"),
    ],
)
async def test_cascade_escalates_with_the_draft(
    smollm2: LocalBackend, store: TranscriptStore, overrides: dict, reason: str
) -> None:
    with ScriptedLead([reply("42")]) as lead:
        orchestrator = Orchestrator(
            catalog=catalog(**overrides), backend=smollm2, lead=lead_for(lead), store=store
        )
        result = await orchestrator.run(SHORT_MATH, "cascade", specialist="math")
    assert result.route == "cascade:escalated:math" and result.escalated
    assert result.answer == "42" and result.lead_tokens > 0
    shown = lead.requests[0]["messages"][-1]
    draft = (await store.get_run(result.run_id)).tool_calls[0].output
    assert shown["role"] == "system" and reason in shown["content"] and draft in shown["content"]


async def test_slm_down_router_still_answers_and_records_the_error(store: TranscriptStore) -> None:
    dead = VLLMBackend(f"http://127.0.0.1:{free_port()}/v1", base_model_name="x", timeout_s=1.0)
    script = [tool_calls(("math_specialist", {"request": "2+2"})), reply("4")]
    with ScriptedLead(script) as lead:
        orchestrator = Orchestrator(
            catalog=catalog(), backend=dead, lead=lead_for(lead), store=store
        )
        result = await orchestrator.run("What is 2+2?", "router")
    await dead.aclose()
    assert result.answer == "4" and result.error is None
    tool = (await store.get_run(result.run_id)).tool_calls[0]
    assert "unavailable" in tool.error and "Answer the request yourself" in tool.output
    assert "Answer the request yourself" in str(lead.requests[1]["messages"])


async def test_lead_down_cascade_degrades_to_the_specialist(
    smollm2: LocalBackend, store: TranscriptStore
) -> None:
    with ScriptedLead([failure(503)], repeat_last=True) as lead:
        orchestrator = Orchestrator(
            catalog=catalog(confidence_threshold=1.0),
            backend=smollm2,
            lead=lead_for(lead, max_retries=2),
            store=store,
        )
        result = await orchestrator.run("What is 12 + 30?", "cascade", specialist="math")
    assert len(lead.requests) == 3  # one try and two retries
    assert result.degraded and result.answer and result.escalated
    assert "degraded" in result.error and "InternalServerError" in result.error
    assert result.failure.kind is FailureKind.lead_unavailable  # the cause travels with it
    recorded = await store.get_run(result.run_id)
    assert recorded.degraded and recorded.failure == result.failure


async def test_llm_mode_uses_no_tools_and_slm_mode_no_lead(smollm2: LocalBackend) -> None:
    with ScriptedLead([reply("Paris")]) as lead:
        orchestrator = Orchestrator(catalog=catalog(), backend=smollm2, lead=lead_for(lead))
        llm = await orchestrator.run("Capital of France?", "llm")
        slm = await orchestrator.run("What is 3 + 4?", "slm", specialist="math")
    assert llm.answer == "Paris" and llm.route == "lead" and "tools" not in lead.requests[0]
    assert slm.route == "slm:math" and slm.lead_tokens == 0 and len(lead.requests) == 1


async def test_without_a_lead_only_slm_works(smollm2: LocalBackend) -> None:
    orchestrator = Orchestrator(catalog=catalog(), backend=smollm2)
    for mode in ("llm", "router", "cascade"):
        with pytest.raises(ConfigurationError, match="set UNDERSTUDY_LEAD_MODEL"):
            await orchestrator.run("hi", mode)
    assert (await orchestrator.run("What is 1 + 1?", "slm", specialist="math")).answer


async def test_turn_budget_stops_a_looping_lead_and_degrades(smollm2: LocalBackend) -> None:
    loop = tool_calls(("calculator", {"expression": "1+1"}))
    with ScriptedLead([loop], repeat_last=True) as lead:
        orchestrator = Orchestrator(
            catalog=catalog(),
            backend=smollm2,
            lead=lead_for(lead),
            budget=RunBudget(max_lead_turns=3),
        )
        result = await orchestrator.run("What is 1 + 1?", "router")
    assert len(lead.requests) == 3
    assert result.degraded and "MaxTurnsExceeded" in result.error
    assert result.failure.kind is FailureKind.budget_exhausted


async def test_time_budget_bounds_a_slow_lead(smollm2: LocalBackend) -> None:
    with ScriptedLead([reply("late", delay_s=3)]) as lead:
        orchestrator = Orchestrator(
            catalog=catalog(), backend=smollm2, lead=lead_for(lead), budget=RunBudget(max_seconds=1)
        )
        started = asyncio.get_running_loop().time()
        result = await orchestrator.run("hello", "llm")
        elapsed = asyncio.get_running_loop().time() - started
    assert elapsed < 2.5
    assert result.answer is None and "time budget" in result.error
    assert result.failure.kind is FailureKind.lead_timeout


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ([], "no messages"),
        ([{"role": "assistant", "content": "hi"}], "last message must be a non-empty user"),
        ([{"role": "function", "content": "x"}], "role 'function'"),
        ([{"role": "tool", "content": "x"}], "a tool result. has no tool_call_id"),
        ("x" * 200_001, "200001 characters; the limit is 200000"),
        ([{"role": "user", "content": "hi"}] * 101, "101 messages; the limit is 100"),
    ],
)
async def test_bad_requests_are_refused(
    smollm2: LocalBackend, request_: object, message: str
) -> None:
    orchestrator = Orchestrator(catalog=catalog(), backend=smollm2)
    with pytest.raises(InvalidRequest, match=message):
        await orchestrator.run(request_, "slm", specialist="math")
    with pytest.raises(InvalidRequest, match="unknown mode 'fast'"):
        await orchestrator.run("hi", "fast")


async def test_every_caller_is_held_to_the_limits_it_was_given(smollm2: LocalBackend) -> None:
    limits = RequestLimits(max_messages=2, max_request_chars=10, max_tokens=5)
    orchestrator = Orchestrator(catalog=catalog(), backend=smollm2, limits=limits)
    with pytest.raises(OverLimit, match="3 messages; the limit is 2"):
        await orchestrator.run([{"role": "user", "content": "a"}] * 3, "slm", specialist="math")
    with pytest.raises(OverLimit, match="11 characters; the limit is 10"):
        await orchestrator.run("x" * 11, "slm", specialist="math")
    with pytest.raises(OverLimit, match="max_tokens 6 is above the limit of 5"):
        await orchestrator.run("hi", "slm", specialist="math", options=capped(6))
    assert (await orchestrator.run("1+1?", "slm", specialist="math", options=capped(5))).answer


async def test_a_run_id_already_recorded_is_refused_not_overwritten(
    smollm2: LocalBackend, store: TranscriptStore
) -> None:
    """Exactly-once callers (the batch runner) choose run ids and rely on this; it must never be
    logged away like a database failure."""
    with ScriptedLead([reply("first"), reply("second")]) as lead:
        orchestrator = Orchestrator(
            catalog=catalog(), backend=smollm2, lead=lead_for(lead), store=store
        )
        first = await orchestrator.run("hello", "llm", run_id="chosen")
        with pytest.raises(RunAlreadyRecorded) as caught:
            await orchestrator.run("hello again", "llm", run_id="chosen")
    assert caught.value.run_id == "chosen"
    recorded = await store.get_run("chosen")
    assert recorded.answer == first.answer == "first"
    assert len(await store.list_runs()) == 1


def test_prices_come_from_litellms_bundled_map() -> None:
    book = PriceBook(slm_per_million=0.02)
    assert book.lead_price("openai/gpt-4o-mini") == book.lead_price("gpt-4o-mini")
    assert book.lead_cost("gpt-4o-mini", 1_000_000, 0) == pytest.approx(0.15)
    assert book.slm_cost(1_000_000) == pytest.approx(0.02)


async def test_a_litellm_lead_works_the_same_way(
    smollm2: LocalBackend, store: TranscriptStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No base URL: the lead goes through LiteLLM (pointed at the scripted server)."""
    with ScriptedLead([tool_calls(("calculator", {"expression": "2**64"})), reply("2^64")]) as lead:
        monkeypatch.setenv("OPENAI_BASE_URL", lead.base_url)
        config = LeadConfig(model="openai/gpt-4o-mini", api_key="sk-litellm-secret", max_retries=0)
        orchestrator = Orchestrator(catalog=catalog(), backend=smollm2, lead=config, store=store)
        result = await orchestrator.run("What is 2 to the 64th?", "router")
    assert result.answer == "2^64" and len(lead.requests) == 2
    run = await store.get_run(result.run_id)
    assert run.tool_calls[0].output == str(2**64)
    assert run.lead_calls and all(c.cost_usd > 0 for c in run.lead_calls)


async def test_the_api_key_is_never_stored_or_shown(
    smollm2: LocalBackend, store: TranscriptStore
) -> None:
    with ScriptedLead([reply("ok")]) as lead:
        config = lead_for(lead)
        orchestrator = Orchestrator(catalog=catalog(), backend=smollm2, lead=config, store=store)
        result = await orchestrator.run("hello", "llm")
    assert "sk-test" not in repr(config)
    assert "sk-test" not in repr(await store.get_run(result.run_id))


def test_package_exports_are_lazy_and_complete() -> None:
    import importlib
    import subprocess
    import sys

    package = importlib.import_module("orchestrator")
    assert all(getattr(package, name) is not None for name in package.__all__)
    probe = (
        "import sys, orchestrator.transcripts, orchestrator.modes; print('agents' in sys.modules)"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert loaded.stdout.strip() == "False"  # the store and the CLI do not pay for the SDK


async def test_answers_stream_through_on_delta(smollm2: LocalBackend) -> None:
    deltas: list[str] = []

    async def collect(text: str) -> None:
        deltas.append(text)

    with ScriptedLead([reply("one two three")]) as lead:
        orchestrator = Orchestrator(catalog=catalog(), backend=smollm2, lead=lead_for(lead))
        streamed = await orchestrator.run("count", "llm", on_delta=collect)
        assert lead.requests[0]["stream"] is True
        lead_deltas, deltas[:] = list(deltas), []
        specialist = await orchestrator.run(
            "What is 1 + 1?", "slm", specialist="math", on_delta=collect
        )
    assert "".join(lead_deltas) == streamed.answer == "one two three" and len(lead_deltas) == 3
    assert deltas == [specialist.answer]  # a specialist's answer goes out whole, once accepted


async def test_max_tokens_caps_the_specialist_and_the_lead(smollm2: LocalBackend) -> None:
    with ScriptedLead([reply("ok")]) as lead:
        orchestrator = Orchestrator(catalog=catalog(), backend=smollm2, lead=lead_for(lead))
        await orchestrator.run("hello", "llm", options=capped(7))
        short = await orchestrator.run("Count to 50.", "slm", specialist="math", options=capped(3))
    assert lead.requests[0]["max_tokens"] == 7
    assert short.slm_completion_tokens == 3


# --------------------------------------------------- failures that degrade, not end (issue 12)


@pytest.fixture
def broken_model_dir(tmp_path: Path) -> Path:
    """A model directory whose files cannot be loaded: the local backend raises ModelError."""
    (tmp_path / "config.json").write_text("{not json")
    return tmp_path


async def test_a_specialist_model_that_cannot_load_degrades_every_mode(
    broken_model_dir: Path, store: TranscriptStore
) -> None:
    broken = LocalBackend(broken_model_dir, base_ref="broken")
    script = [tool_calls(("math_specialist", {"request": "2+2"})), reply("4"), reply("4")]
    with ScriptedLead(script) as lead:
        orchestrator = Orchestrator(
            catalog=catalog(), backend=broken, lead=lead_for(lead), store=store
        )
        routed = await orchestrator.run("What is 2+2?", "router")
        cascaded = await orchestrator.run("What is 2+2?", "cascade", specialist="math")
        alone = await orchestrator.run("What is 2+2?", "slm", specialist="math")
    await broken.aclose()
    assert routed.answer == "4" and routed.error is None
    tool = (await store.get_run(routed.run_id)).tool_calls[0]
    assert "cannot load model" in tool.error and "Answer the request yourself" in tool.output
    assert cascaded.answer == "4" and cascaded.route == "cascade:escalated:math"
    assert alone.answer is None and alone.failure.kind is FailureKind.specialist_failed
    assert "cannot load model" in (await store.get_run(alone.run_id)).tool_calls[0].error


async def test_a_specialist_call_ends_with_the_runs_time_budget(store: TranscriptStore) -> None:
    """A backend that never answers (and would wait 60 s) is cut at the run's deadline."""
    with socket.socket() as silent:  # accepts connections, never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        hanging = VLLMBackend(
            f"http://127.0.0.1:{port}/v1", base_model_name="x", timeout_s=60.0, max_retries=0
        )
        orchestrator = Orchestrator(
            catalog=catalog(), backend=hanging, store=store, budget=RunBudget(max_seconds=1.0)
        )
        started = time.monotonic()
        result = await orchestrator.run("What is 2+2?", "slm", specialist="math")
        elapsed = time.monotonic() - started
        await hanging.aclose()
    assert elapsed < 10 and result.answer is None
    assert result.failure.kind is FailureKind.run_timeout and result.failure.kind.retryable
    recorded = await store.get_run(result.run_id)
    assert "time budget ran out" in recorded.tool_calls[0].error


async def test_only_the_answering_turns_text_is_streamed(smollm2: LocalBackend) -> None:
    deltas: list[str] = []

    async def collect(text: str) -> None:
        deltas.append(text)

    script = [
        tool_calls(("calculator", {"expression": "2+2"}), content="Let me compute."),
        reply("It is 4"),
    ]
    with ScriptedLead(script) as lead:
        orchestrator = Orchestrator(catalog=catalog(), backend=smollm2, lead=lead_for(lead))
        result = await orchestrator.run("What is 2+2?", "router", on_delta=collect)
    assert "".join(deltas) == result.answer == "It is 4"


async def test_a_truncated_draft_is_escalated_never_accepted(
    smollm2: LocalBackend, store: TranscriptStore
) -> None:
    with ScriptedLead([reply("42")]) as lead:
        orchestrator = Orchestrator(
            catalog=catalog(confidence_threshold=0.0),
            backend=smollm2,
            lead=lead_for(lead),
            store=store,
        )
        result = await orchestrator.run(SHORT_MATH, "cascade", specialist="math", options=capped(2))
        alone = await orchestrator.run(SHORT_MATH, "slm", specialist="math", options=capped(2))
    assert result.route == "cascade:escalated:math" and result.answer == "42"
    assert "cut off at its token limit" in str(lead.requests[0]["messages"])
    assert result.finish_reason == "stop"  # the lead's complete answer
    assert alone.finish_reason == "length" and alone.slm_completion_tokens == 2
    # the transcript keeps how each answer ended
    assert (await store.get_run(alone.run_id)).finish_reason == "length"
    assert (await store.get_run(result.run_id)).finish_reason == "stop"
