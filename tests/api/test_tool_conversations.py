"""A tool conversation in router mode, with the official ``openai`` client: the lead calls one
of our tools and one of the app's; ours runs here, the app's goes back; the app's next request
continues the conversation the lead was having (our call and its result spliced back in), its
run linked to the first — for the key that made it, and no other."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest

from orchestrator.testing import ScriptedLead, Step, reply, tool_calls
from orchestrator.transcripts import RunRecord, TranscriptStore
from serving.keys import KeyStore
from tests.api.test_app_tools import WEATHER
from tests.api.test_chat_api import SHORT_QUESTION, Api, recorded_run, understudy
from tests.api.test_chat_api import api as api  # the server fixture, re-exported
from tests.helpers.cli import understudy as cli
from tests.helpers.stores import open_store

QUESTION = {"role": "user", "content": f"{SHORT_QUESTION} And the weather in Rome?"}
SPECIALIST = ("math_specialist", {"request": SHORT_QUESTION})
ROME = ("get_weather", {"city": "Rome"})

MIXED_TURNS = {
    "in one response": [tool_calls(SPECIALIST, ROME)],
    "ours first, then the app's": [tool_calls(SPECIALIST), tool_calls(ROME)],
}
"""Two ways a lead mixes our tools with the app's before the app must answer."""


def first_turn(api: Api, script: list[Step], **kwargs: Any) -> tuple[Any, RunRecord]:
    """The app's first request; the lead follows ``script``. Its reply and its run."""
    api.lead.enqueue(*script)
    first = api.client().chat.completions.create(
        model="understudy-router", messages=[QUESTION], tools=[WEATHER], **kwargs
    )
    return first, asyncio.run(recorded_run(api, understudy(first)["run_id"]))


def follow_up(api: Api, first: Any, *, key: str | None = None, result: str = "sunny") -> Any:
    """The app's next request, as the openai client's users write it: the assistant message
    echoed as it came back, and a ``tool`` message answering each of its calls."""
    api.lead.enqueue(reply("42, and it is sunny in Rome."))
    message = first.choices[0].message
    answers = [
        {"role": "tool", "tool_call_id": call.id, "content": result} for call in message.tool_calls
    ]
    return api.client(key).chat.completions.create(
        model="understudy-router",
        messages=[QUESTION, message.model_dump(exclude_none=True), *answers],
        tools=[WEATHER],
    )


def lead_history(lead: ScriptedLead) -> list[dict[str, Any]]:
    """The conversation the lead was last shown, after its system prompt."""
    messages = lead.requests[-1]["messages"]
    assert messages[0]["role"] == "system"
    return messages[1:]


def assert_every_call_answered(history: list[dict[str, Any]]) -> None:
    """OpenAI's rule: each call of an assistant message has a ``tool`` message after it."""
    for index, message in enumerate(history):
        for call in message.get("tool_calls") or ():
            answered = [m for m in history[index + 1 :] if m.get("tool_call_id") == call["id"]]
            assert len(answered) == 1, f"call {call['id']} is answered {len(answered)} times"


@pytest.mark.parametrize("script", MIXED_TURNS.values(), ids=MIXED_TURNS.keys())
def test_the_follow_up_continues_the_conversation_the_lead_had(
    api: Api, script: list[Step]
) -> None:
    first, run = first_turn(api, script)
    choice = first.choices[0]
    (call,) = choice.message.tool_calls  # the app gets its own call, never ours
    assert choice.finish_reason == "tool_calls"
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", ROME[1])
    assert understudy(first)["specialists"] == ["math"]
    (ran,) = run.tool_calls  # ours ran here, once
    assert ran.name == "math_specialist" and ran.output
    asked_before = len(api.lead.requests)

    second = follow_up(api, first)
    assert second.choices[0].message.content == "42, and it is sunny in Rome."
    assert len(api.lead.requests) == asked_before + 1
    history = lead_history(api.lead)
    assert history[0] == QUESTION
    assert history[-1] == {"role": "tool", "tool_call_id": call.id, "content": "sunny"}
    ours = [c for m in history for c in m.get("tool_calls") or () if c["id"] != call.id]
    assert [c["function"]["name"] for c in ours] == ["math_specialist"]
    (our_result,) = [m for m in history if m.get("tool_call_id") == ours[0]["id"]]
    assert our_result["content"] == ran.output  # what the specialist said, not run again
    assert_every_call_answered(history)
    again = asyncio.run(recorded_run(api, understudy(second)["run_id"]))
    assert again.tool_calls == []

    assert understudy(second)["continues_run_id"] == run.run_id
    assert again.continues_run_id == run.run_id
    assert asyncio.run(continuations(api, run.run_id)) == [again.run_id]


def test_the_cli_follows_the_conversation_turn_by_turn(api: Api) -> None:
    first, run = first_turn(api, MIXED_TURNS["in one response"])
    second = understudy(follow_up(api, first))["run_id"]

    shown = json.loads(cli("runs", "show", run.run_id, "--json").stdout)
    assert shown["continued_by"] == [second] and shown["continues_run_id"] is None
    assert [m["role"] for m in shown["lead_turn"]] == ["assistant", "tool"]
    text = cli("runs", "show", second).stdout
    assert f"continues run {run.run_id}" in text
    assert "→ math_specialist(" in text and "tool (" in text  # the spliced turn, readable
    listed = json.loads(cli("runs", "list", "--json").stdout.splitlines()[0])  # newest first
    assert (listed["id"], listed["continues_run_id"]) == (second, run.run_id)


def test_another_keys_follow_up_is_taken_as_its_own_history(api: Api) -> None:
    first, run = first_turn(api, MIXED_TURNS["in one response"])
    second = follow_up(api, first, key=asyncio.run(another_key(api)))

    history = lead_history(api.lead)  # as the client sent it: nothing of the other key's run
    assert [m["role"] for m in history] == ["user", "assistant", "tool"]
    (call,) = history[1]["tool_calls"]
    assert (call["id"], call["function"]["name"]) == (
        first.choices[0].message.tool_calls[0].id,
        "get_weather",
    )
    assert understudy(second)["continues_run_id"] is None
    assert asyncio.run(continuations(api, run.run_id)) == []


def test_a_chain_of_tool_turns_is_continued_whole(api: Api) -> None:
    """Each turn continues the one before it; the third request carries both echoes, and the
    lead sees both runs' turns."""
    first, run = first_turn(api, MIXED_TURNS["in one response"])
    echo = first.choices[0].message
    api.lead.enqueue(tool_calls(("get_weather", {"city": "Oslo"})))
    history = [
        QUESTION,
        echo.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": echo.tool_calls[0].id, "content": "sunny"},
    ]
    client = api.client()
    second = client.chat.completions.create(
        model="understudy-router", messages=history, tools=[WEATHER]
    )
    oslo = second.choices[0].message
    assert understudy(second)["continues_run_id"] == run.run_id

    api.lead.enqueue(reply("Sunny in both."))
    third = client.chat.completions.create(
        model="understudy-router",
        messages=[
            *history,
            oslo.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": oslo.tool_calls[0].id, "content": "snow"},
        ],
        tools=[WEATHER],
    )
    assert understudy(third)["continues_run_id"] == understudy(second)["run_id"]
    seen = lead_history(api.lead)
    names = [c["function"]["name"] for m in seen for c in m.get("tool_calls") or ()]
    assert names == ["math_specialist", "get_weather", "get_weather"]
    assert_every_call_answered(seen)


def test_an_echo_without_all_its_calls_is_a_400_naming_messages(api: Api) -> None:
    first, _run = first_turn(api, [tool_calls(ROME, ("get_weather", {"city": "Oslo"}))])
    echo = first.choices[0].message.model_dump(exclude_none=True)
    rome = echo["tool_calls"][0]
    asked_before = len(api.lead.requests)
    with pytest.raises(openai.BadRequestError) as refused:
        api.client().chat.completions.create(
            model="understudy-router",
            messages=[
                QUESTION,
                {**echo, "tool_calls": [rome]},
                {"role": "tool", "tool_call_id": rome["id"], "content": "sunny"},
            ],
            tools=[WEATHER],
        )
    error = refused.value.response.json()["error"]
    assert error["param"] == "messages" and "messages[1]" in error["message"]
    assert len(api.lead.requests) == asked_before


async def continuations(api: Api, run_id: str) -> list[str]:
    store = await open_store(TranscriptStore, api.settings.database_url)
    try:
        return await store.continuations(run_id)
    finally:
        await store.database.close()


async def another_key(api: Api) -> str:
    keys = await open_store(KeyStore, api.settings.database_url)
    try:
        _, plaintext = await keys.create("another app", requests_per_minute=1000)
    finally:
        await keys.database.close()
    return plaintext
