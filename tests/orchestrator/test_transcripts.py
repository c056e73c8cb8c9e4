"""The transcript store on real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import math
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from database.engine import create_engine
from database.tables import ToolCallRow
from orchestrator.handover import Handover, new_call_id
from orchestrator.outcome import Failure, FailureKind
from orchestrator.transcripts import (
    LeadCallRecord,
    RunAlreadyRecorded,
    RunNotFound,
    RunRecord,
    TranscriptStore,
)
from specialists.backend import ChatMessage, FunctionCall
from tools.context import ToolCall

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def make_run(**overrides: Any) -> RunRecord:
    """A cascade run that escalated: three lead calls, three tool calls, nested JSON."""
    run = RunRecord(
        run_id=uuid.uuid4().hex,
        mode="cascade",
        input_messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Combien font 17 × 23 ? 🤔", "meta": {"lang": "fr"}},
        ],
        answer="391",
        route="cascade:escalated:math",
        specialists=["math", "code"],
        escalated=True,
        degraded=False,
        confidence=0.4375,
        lead_input_tokens=1234,
        lead_output_tokens=56,
        slm_prompt_tokens=78,
        slm_completion_tokens=9,
        cost_usd=0.000123456789,
        lead_only_cost_usd=0.1 + 0.2,
        latency_ms=812.5,
        route_scores={"math": 0.61, "email": 0.125, "code": -0.0625},
        created_at=T0,
        lead_calls=[
            LeadCallRecord(
                model=f"lead-{i}",
                messages=[{"role": "user", "content": f"turn {i}", "n": [i, None, True, 1.5]}],
                output=[
                    {
                        "type": "function_call",
                        "name": "math",
                        "arguments": '{"question": "17 × 23"}',
                        "nested": {"deep": [{"x": i}]},
                    }
                ],
                input_tokens=100 * i,
                output_tokens=10 * i,
                cost_usd=i / 1000,
                latency_ms=i + 0.25,
                error="rate limited" if i == 1 else None,
            )
            for i in (3, 1, 2)  # not sorted by any field: only the seq column can keep this order
        ],
        tool_calls=[
            ToolCall(
                name="run_python", input={"code": "print(17*23)"}, output="391\n", latency_ms=40.0
            ),
            ToolCall(
                name="math",
                input={"question": "17 × 23", "options": {"steps": [1, 2]}},
                output="391",
                latency_ms=120.5,
                confidence=0.4375,
                specialist="math",
                slm_prompt_tokens=78,
                slm_completion_tokens=9,
            ),
            ToolCall(
                name="calculator",
                input={"expression": "17*23"},
                output="",
                latency_ms=1.0,
                error="boom",
            ),
        ],
    )
    return replace(run, **overrides)


async def test_round_trip_keeps_every_field_children_order_and_json(
    transcript_store: TranscriptStore,
) -> None:
    paris = timezone(timedelta(hours=1))
    run = make_run(created_at=T0.astimezone(paris))

    await transcript_store.save_run(run)
    loaded = await transcript_store.get_run(run.run_id)

    assert loaded == run  # every field, children in call order, JSON and floats exact
    assert [c.model for c in loaded.lead_calls] == ["lead-3", "lead-1", "lead-2"]
    assert [c.name for c in loaded.tool_calls] == ["run_python", "math", "calculator"]
    assert loaded.created_at == T0 and loaded.created_at.utcoffset() == timedelta(0)
    assert loaded.input_messages[1]["content"] == "Combien font 17 × 23 ? 🤔"


APP_TOOL_CALLS = (
    FunctionCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}'),
    FunctionCall(id="call_2", name="get_time", arguments="{}"),
)
"""The caller's own tool calls a run answered with (``finish_reason`` ``tool_calls``)."""


async def test_the_apps_tool_calls_a_run_answered_with_are_kept_in_order(
    transcript_store: TranscriptStore,
) -> None:
    """A replayed run (a batch attempt claimed again) must answer the same tool calls."""
    run = make_run(answer="", finish_reason="tool_calls", app_tool_calls=APP_TOOL_CALLS)
    await transcript_store.save_run(run)
    assert (await transcript_store.get_run(run.run_id)).app_tool_calls == APP_TOOL_CALLS
    plain = make_run()
    await transcript_store.save_run(plain)
    assert (await transcript_store.get_run(plain.run_id)).app_tool_calls == ()


def handing_over(owner: str | None, **overrides: Any) -> RunRecord:
    """A run that handed the caller's calls over, with ids of its own (as every run's are)."""
    calls = tuple(replace_id(call) for call in APP_TOOL_CALLS)
    turn: list[ChatMessage] = [
        {"role": "assistant", "content": "", "tool_calls": [OUR_CALL, *calls]},
        {"role": "tool", "tool_call_id": OUR_CALL["id"], "content": "42"},
    ]
    return make_run(
        answer="",
        finish_reason="tool_calls",
        app_tool_calls=calls,
        lead_turn=turn,
        owner_key_id=owner,
        **overrides,
    )


def replace_id(call: FunctionCall) -> FunctionCall:
    return FunctionCall(id=new_call_id(), name=call["name"], arguments=call["arguments"])


OUR_CALL = FunctionCall(id="lead_7", name="math_specialist", arguments='{"request": "6*7"}')


async def test_a_handed_over_turn_is_found_by_its_calls_for_its_owner_only(
    transcript_store: TranscriptStore,
) -> None:
    mine = handing_over("key-a")
    anonymous = handing_over(None)
    for run in (mine, anonymous, handing_over("key-b")):
        await transcript_store.save_run(run)
    asked = {mine.app_tool_calls[0]["id"], anonymous.app_tool_calls[1]["id"], "call_unknown"}

    (found,) = await transcript_store.handovers(asked, "key-a")
    assert found == Handover(mine.run_id, mine.app_tool_calls, tuple(mine.lead_turn))
    (found,) = await transcript_store.handovers(asked, None)  # nobody in particular is one owner
    assert found.run_id == anonymous.run_id
    assert await transcript_store.handovers(asked, "key-b") == []
    assert await transcript_store.handovers(set(), "key-a") == []


async def test_a_continuation_is_linked_both_ways(transcript_store: TranscriptStore) -> None:
    first = handing_over("key-a", created_at=T0)
    second = make_run(continues_run_id=first.run_id, owner_key_id="key-a", created_at=T0)
    for run in (first, second):
        await transcript_store.save_run(run)

    assert await transcript_store.get_run(second.run_id) == second
    assert await transcript_store.get_run(first.run_id) == first  # its turn and owner included
    (listed,) = [r for r in await transcript_store.list_runs() if r.run_id == second.run_id]
    assert listed.continues_run_id == first.run_id
    assert await transcript_store.continuations(first.run_id) == [second.run_id]
    assert await transcript_store.continuations(second.run_id) == []


async def test_children_are_read_in_seq_order_not_insertion_order(
    transcript_store: TranscriptStore, database_url: str
) -> None:
    run = make_run(lead_calls=[], tool_calls=[])
    await transcript_store.save_run(run)
    engine = create_engine(database_url)
    try:
        async with AsyncSession(engine) as session, session.begin():
            for seq in (2, 0, 1):  # ids (insertion order) disagree with seq
                session.add(
                    ToolCallRow(
                        run_id=run.run_id,
                        seq=seq,
                        name=f"t{seq}",
                        input={},
                        output="",
                        latency_ms=0.0,
                    )
                )
    finally:
        await engine.dispose()

    loaded = await transcript_store.get_run(run.run_id)
    assert [call.name for call in loaded.tool_calls] == ["t0", "t1", "t2"]


async def test_run_without_children_round_trips(transcript_store: TranscriptStore) -> None:
    failure = Failure(FailureKind.lead_rate_limited, "lead down")
    run = make_run(lead_calls=[], tool_calls=[], answer=None, confidence=None, failure=failure)
    await transcript_store.save_run(run)
    loaded = await transcript_store.get_run(run.run_id)
    assert loaded == run and loaded.failure == failure and loaded.error == "lead down"


async def test_a_failure_recorded_before_kinds_existed_reads_as_unclassified(
    transcript_store: TranscriptStore, database_url: str
) -> None:
    """Runs written by schema 0004 have an error and no kind: retried, as they were then."""
    run = make_run(answer=None, failure=Failure(FailureKind.lead_refused, "lead failed: 400"))
    await transcript_store.save_run(run)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE runs SET failure_kind = NULL"))
    finally:
        await engine.dispose()

    loaded = await transcript_store.get_run(run.run_id)
    assert loaded.failure == Failure(FailureKind.unclassified, "lead failed: 400")
    assert loaded.failure.kind.retryable


async def test_list_runs_newest_first_with_limit_offset_and_mode(
    transcript_store: TranscriptStore,
) -> None:
    # Ids, save order and time order all differ, so only created_at can produce the order.
    ids = ["c", "e", "a", "d", "b"]
    modes = ["llm", "slm", "router", "slm", "cascade"]
    runs = [
        make_run(run_id=run_id, mode=mode, created_at=T0 + timedelta(minutes=minute))
        for minute, (run_id, mode) in enumerate(zip(ids, modes, strict=True))
    ]
    for i in (2, 4, 0, 3, 1):
        await transcript_store.save_run(runs[i])

    listed = await transcript_store.list_runs()
    assert [r.run_id for r in listed] == ["b", "d", "a", "e", "c"]
    assert all(r.lead_calls == [] and r.tool_calls == [] for r in listed)
    assert listed[0] == replace(runs[4], lead_calls=[], tool_calls=[])

    page = await transcript_store.list_runs(limit=2, offset=1)
    assert [r.run_id for r in page] == ["d", "a"]
    assert [r.run_id for r in await transcript_store.list_runs(mode="slm")] == ["d", "e"]
    assert [r.run_id for r in await transcript_store.list_runs(mode="slm", limit=1)] == ["d"]
    assert await transcript_store.list_runs(mode="nonexistent") == []
    with pytest.raises(ValueError, match="offset"):
        await transcript_store.list_runs(offset=-1)


async def test_duplicate_id_raises_and_changes_nothing(transcript_store: TranscriptStore) -> None:
    original = make_run()
    await transcript_store.save_run(original)
    impostor = make_run(
        run_id=original.run_id,
        answer="something else",
        lead_calls=[*original.lead_calls, original.lead_calls[0]],
        tool_calls=[],
    )

    with pytest.raises(RunAlreadyRecorded, match=original.run_id) as caught:
        await transcript_store.save_run(impostor)

    assert caught.value.run_id == original.run_id
    assert await transcript_store.get_run(original.run_id) == original
    assert len(await transcript_store.list_runs()) == 1


async def test_unknown_run_raises_run_not_found(transcript_store: TranscriptStore) -> None:
    await transcript_store.save_run(make_run(run_id="known"))

    with pytest.raises(RunNotFound, match="'missing'") as caught:
        await transcript_store.get_run("missing")
    assert caught.value.run_id == "missing"
    with pytest.raises(RunNotFound, match="'missing'"):
        await transcript_store.add_feedback("missing", 1.0)
    with pytest.raises(RunNotFound, match="'missing'"):
        await transcript_store.feedback_for("missing")
    assert await transcript_store.feedback_for("known") == []


async def test_feedback_is_kept_in_order_with_utc_times(transcript_store: TranscriptStore) -> None:
    run = make_run()
    await transcript_store.save_run(run)
    before = datetime.now(UTC)

    first = await transcript_store.add_feedback(run.run_id, -1.0, "wrong unit")
    second = await transcript_store.add_feedback(run.run_id, 1, "x" * 4000)
    third = await transcript_store.add_feedback(run.run_id, 0.25)

    stored = await transcript_store.feedback_for(run.run_id)
    assert stored == [first, second, third]
    assert [f.score for f in stored] == [-1.0, 1.0, 0.25]
    assert stored[1].comment == "x" * 4000 and stored[2].comment is None
    assert all(f.created_at.utcoffset() == timedelta(0) for f in stored)
    assert before <= stored[0].created_at <= stored[2].created_at <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("score", "comment"),
    [
        (1.01, None),
        (-1.5, None),
        (math.nan, None),
        (math.inf, None),
        (True, None),
        ("0.5", None),
        (0.5, "x" * 4001),
    ],
)
async def test_invalid_feedback_is_rejected_and_not_stored(
    transcript_store: TranscriptStore, score: Any, comment: str | None
) -> None:
    run = make_run()
    await transcript_store.save_run(run)

    with pytest.raises(ValueError):
        await transcript_store.add_feedback(run.run_id, score, comment)
    assert await transcript_store.feedback_for(run.run_id) == []


async def test_unstorable_text_is_cleaned_the_same_on_every_backend(
    transcript_store: TranscriptStore,
) -> None:
    run = make_run(
        answer="a\x00b",
        input_messages=[{"role": "user", "content": "bad \ud800 half", "score": math.nan}],
        tool_calls=[
            ToolCall(
                name="run_python", input={"k\x00": [math.inf]}, output="\x00\x01", latency_ms=1.0
            )
        ],
    )

    await transcript_store.save_run(run)
    loaded = await transcript_store.get_run(run.run_id)

    assert loaded.answer == "a\ufffdb"
    assert loaded.input_messages == [{"role": "user", "content": "bad ? half", "score": None}]
    assert loaded.tool_calls[0].input == {"k\ufffd": [None]}
    assert loaded.tool_calls[0].output == "\ufffd\x01"


async def test_invalid_runs_are_rejected_before_anything_is_written(
    transcript_store: TranscriptStore,
) -> None:
    not_json = make_run(tool_calls=[ToolCall("calc", {"x": object()}, "", 1.0)])
    with pytest.raises(TypeError, match=r"tool_calls\[0\]\.input\.x"):
        await transcript_store.save_run(not_json)
    with pytest.raises(ValueError, match="timezone-aware"):
        await transcript_store.save_run(make_run(created_at=datetime(2025, 1, 1)))
    with pytest.raises(ValueError, match="run id"):
        await transcript_store.save_run(make_run(run_id="x" * 65))
    with pytest.raises(ValueError, match="mode"):
        await transcript_store.save_run(make_run(mode=""))

    assert await transcript_store.list_runs() == []


async def test_deleting_a_run_cascades_to_its_children(
    transcript_store: TranscriptStore, database_url: str
) -> None:
    run = make_run()
    await transcript_store.save_run(run)
    await transcript_store.add_feedback(run.run_id, 0.5)

    engine = create_engine(database_url)  # the store's own setup: foreign keys on for SQLite
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DELETE FROM runs WHERE id = :id"), {"id": run.run_id})
            counts = [
                (await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
                for table in ("lead_calls", "tool_calls", "feedback")
            ]
    finally:
        await engine.dispose()
    assert counts == [0, 0, 0]
