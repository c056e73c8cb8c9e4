"""Transcripts for distillation come out of the real store (SQLite and PostgreSQL) complete."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest_asyncio

from distill.source import read_transcripts
from orchestrator.outcome import Failure, FailureKind
from orchestrator.transcripts import RunRecord, TranscriptStore
from specialists.backend import FunctionCall
from specialists.catalog import Catalog
from tests.helpers.stores import open_store
from tools.context import ToolCall

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def run_record(index: int, route: str, specialists: list[str], **fields) -> RunRecord:
    values = {
        "run_id": f"run-{index}",
        "mode": "cascade",
        "input_messages": [{"role": "user", "content": f"question {index}"}],
        "answer": f"answer {index}",
        "route": route,
        "specialists": specialists,
        "escalated": route.startswith("cascade:escalated"),
        "degraded": False,
        "confidence": 0.4,
        "lead_input_tokens": 10,
        "lead_output_tokens": 5,
        "slm_prompt_tokens": 3,
        "slm_completion_tokens": 2,
        "cost_usd": 0.001,
        "lead_only_cost_usd": 0.002,
        "latency_ms": 100.0,
        "created_at": EPOCH + timedelta(minutes=index),
    }
    values.update(fields)
    return RunRecord(**values)


LEAD_FAILED = Failure(FailureKind.lead_unavailable, "lead failed")


@pytest_asyncio.fixture
async def store(database_url: str) -> AsyncIterator[TranscriptStore]:
    store = await open_store(TranscriptStore, database_url)
    try:
        yield store
    finally:
        await store.database.close()


async def test_runs_that_consulted_the_specialist_come_with_tool_calls_and_feedback(
    store: TranscriptStore,
) -> None:
    delegated = run_record(
        1,
        "router",
        ["math"],
        tool_calls=[
            ToolCall("calculator", {"expression": "17*24"}, "408", 5.0),
            ToolCall("math_specialist", {"request": "17*24?"}, '{"answer": "408"}', 9.0, 0.8),
        ],
    )
    await store.save_run(delegated)
    await store.save_run(run_record(2, "lead", [], mode="llm"))
    await store.save_run(run_record(3, "cascade:escalated:email", ["email"]))
    await store.save_run(run_record(4, "cascade:escalated:math", ["math"], failure=LEAD_FAILED))
    await store.add_feedback("run-1", 1.0)
    await store.add_feedback("run-1", -0.5, "off by one")

    seen: list[tuple[int, int]] = []
    transcripts = await read_transcripts(
        store,
        Catalog.default(),
        specialist="math",
        max_runs=100,
        on_progress=lambda scanned, selected: seen.append((scanned, selected)),
    )
    assert [t.run_id for t in transcripts] == ["run-4", "run-1"]  # newest first
    assert seen[-1] == (4, 2)
    first = transcripts[1]
    assert first.feedback == (1.0, -0.5) and first.route == "router"
    assert first.query == "question 1" and first.answer == "answer 1"
    assert [(c.name, c.specialist) for c in first.tool_calls] == [
        ("calculator", None),
        ("math_specialist", "math"),
    ]
    assert first.tool_calls[1].input == {"request": "17*24?"}
    assert first.tool_calls[1].confidence == 0.8
    assert transcripts[0].error == "lead failed"


async def test_scanning_stops_at_the_limit_and_chosen_runs_are_read_by_id(
    store: TranscriptStore,
) -> None:
    for index in range(5):
        await store.save_run(run_record(index, "cascade:escalated:math", ["math"]))
    newest = await read_transcripts(store, Catalog.default(), specialist="math", max_runs=2)
    assert [t.run_id for t in newest] == ["run-4", "run-3"]
    chosen = await read_transcripts(
        store, Catalog.default(), run_ids={"run-0", "run-2", "gone"}, max_runs=100
    )
    assert [t.run_id for t in chosen] == ["run-0", "run-2"]  # a deleted run is skipped


async def test_a_run_that_handed_the_apps_tool_calls_over_has_no_answer_to_learn_from(
    store: TranscriptStore,
) -> None:
    call = FunctionCall(id="call_1", name="get_weather", arguments="{}")
    handed_over = run_record(
        1,
        "router",
        ["math"],
        answer="Let me look that up.",  # what the lead said beside the call
        finish_reason="tool_calls",
        app_tool_calls=(call,),
        tool_calls=[ToolCall("math_specialist", {"request": "2+2?"}, "4", 9.0, 0.8)],
    )
    await store.save_run(handed_over)
    (transcript,) = await read_transcripts(
        store, Catalog.default(), specialist="math", max_runs=100
    )
    assert transcript.answer is None
