"""The app's own function tools through the chat API, with the official ``openai`` client: the
lead sees them, its calls come back to the client (whole and as streamed deltas), the tool's
result continues the conversation; our tools still run server-side; what cannot be honoured
is a 400 naming it."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest

from orchestrator.testing import Step, failure, reply, tool_calls
from specialists.backend import TokenLogprob
from tests.api.test_chat_api import SHORT_QUESTION, Api, ask, recorded_run, understudy
from tests.api.test_chat_api import api as api  # the server fixture, re-exported

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def sent_tool_names(body: dict) -> list[str]:
    return [tool["function"]["name"] for tool in body.get("tools") or []]


def test_llm_tool_round_trip(api: Api) -> None:
    client = api.client()
    question = {"role": "user", "content": "Weather in Paris?"}
    api.lead.enqueue(tool_calls(("get_weather", {"city": "Paris"})))
    first = client.chat.completions.create(
        model="understudy-llm",
        messages=[question],
        tools=[WEATHER],
        tool_choice="required",
        parallel_tool_calls=False,
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {
        "city": "Paris"
    }
    sent = api.lead.requests[-1]
    assert sent["tools"] == [{**WEATHER, "function": {**WEATHER["function"], "strict": False}}]
    assert (sent["tool_choice"], sent["parallel_tool_calls"]) == ("required", False)
    assert understudy(first)["route"] == "lead"

    api.lead.enqueue(reply("Sunny in Paris."))
    second = client.chat.completions.create(
        model="understudy-llm",
        messages=[
            question,
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny"}'},
        ],
        tools=[WEATHER],
    )
    assert second.choices[0].message.content == "Sunny in Paris."
    assert second.choices[0].finish_reason == "stop"
    history = api.lead.requests[-1]["messages"]
    assistant = next(m for m in history if m["role"] == "assistant")
    assert assistant["tool_calls"][0]["id"] == call.id
    assert assistant["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": call.function.arguments,
    }
    assert history[-1] == {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny"}'}


def test_a_tool_call_turn_is_not_held_to_the_response_format(api: Api) -> None:
    """The format binds the answer that follows the tool results, as OpenAI applies it: a turn
    of tool calls comes back as tool calls, not as an answer that failed the format."""
    json_only = {"type": "json_object"}
    api.lead.enqueue(tool_calls(("get_weather", {"city": "Lima"})))
    first = ask(
        api, "understudy-llm", "Weather in Lima?", tools=[WEATHER], response_format=json_only
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls[0].function.name == "get_weather"
    assert api.lead.requests[-1]["response_format"] == json_only

    api.lead.enqueue(reply("Sunny."))  # the answer after the tool result is held to it
    with pytest.raises(openai.APIStatusError) as refused:
        api.client().chat.completions.create(
            model="understudy-llm",
            messages=[
                {"role": "user", "content": "Weather in Lima?"},
                choice.message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": choice.message.tool_calls[0].id, "content": "{}"},
            ],
            tools=[WEATHER],
            response_format=json_only,
        )
    assert refused.value.status_code == 503
    assert "response_format" in refused.value.response.json()["error"]["message"]


def test_a_named_tool_choice_reaches_the_lead(api: Api) -> None:
    api.lead.enqueue(tool_calls(("get_weather", {"city": "Oslo"})))
    completion = ask(
        api,
        "understudy-llm",
        "Weather in Oslo?",
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert completion.choices[0].finish_reason == "tool_calls"
    assert api.lead.requests[-1]["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_weather"},
    }


def test_router_runs_its_own_tools_and_returns_the_apps(api: Api) -> None:
    api.lead.enqueue(
        tool_calls(("math_specialist", {"request": SHORT_QUESTION})),
        tool_calls(("get_weather", {"city": "Rome"}), ("get_weather", {"city": "Oslo"})),
    )
    completion = ask(api, "understudy-router", SHORT_QUESTION, tools=[WEATHER])
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    cities = [json.loads(c.function.arguments)["city"] for c in choice.message.tool_calls]
    assert cities == ["Rome", "Oslo"]
    assert understudy(completion)["specialists"] == ["math"]
    first = api.lead.requests[0]
    assert {"math_specialist", "calculator", "get_weather"} <= set(sent_tool_names(first))
    # the specialist's answer went back to the lead before it called the app's tool
    assert api.lead.requests[1]["messages"][-1]["role"] == "tool"
    assert len(api.lead.requests) == 2

    record = asyncio.run(recorded_run(api, understudy(completion)["run_id"]))
    assert [c.name for c in record.tool_calls] == ["math_specialist"]
    assert record.finish_reason == "tool_calls"
    last_output = record.lead_calls[-1].output
    assert "get_weather" in json.dumps(last_output)


def test_router_continues_with_the_tool_result(api: Api) -> None:
    api.lead.enqueue(reply("It is sunny in Rome."))
    completion = api.client().chat.completions.create(
        model="understudy-router",
        messages=[
            {"role": "user", "content": "Weather in Rome?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        tools=[WEATHER],
    )
    assert completion.choices[0].message.content == "It is sunny in Rome."
    assert api.lead.requests[-1]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": "sunny",
    }


@pytest.mark.parametrize("model", ["understudy-llm", "understudy-router"])
def test_streamed_tool_calls_are_assembled_by_the_client(api: Api, model: str) -> None:
    api.lead.enqueue(tool_calls(("get_weather", {"city": "Lima"})))
    with api.client().chat.completions.stream(
        model=model,
        messages=[{"role": "user", "content": "Weather in Lima?"}],
        tools=[WEATHER],
    ) as stream:
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Lima"}
    assert not choice.message.content
    # The app appends the assembled message as it is (its calls keep their stream index).
    api.lead.enqueue(reply("Sunny in Lima."))
    follow_up = api.client().chat.completions.create(
        model=model,
        messages=[
            {"role": "user", "content": "Weather in Lima?"},
            choice.message,  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
        tools=[WEATHER],
    )
    assert follow_up.choices[0].message.content == "Sunny in Lima."


def beside_the_calls(model: str) -> tuple[list[Step], str]:
    """A script whose last turn writes text beside its call of the app's tool (``router``:
    after a turn that thinks aloud beside a call of ours, which is not the answer), and the
    text the client must get."""
    said = "Let me look that up."
    last = tool_calls(("get_weather", {"city": "Lima"}), content=said)
    if model == "understudy-llm":
        return [last], said
    ours = tool_calls(("calculator", {"expression": "1+1"}), content="Thinking aloud.")
    return [ours, last], said


@pytest.mark.parametrize("model", ["understudy-llm", "understudy-router"])
@pytest.mark.parametrize("stream", [False, True])
def test_the_text_beside_the_apps_tool_calls_is_the_content(
    api: Api, model: str, stream: bool
) -> None:
    steps, said = beside_the_calls(model)
    api.lead.enqueue(*steps)
    create = api.client().chat.completions
    arguments = {
        "model": model,
        "messages": [{"role": "user", "content": "Weather in Lima?"}],
        "tools": [WEATHER],
    }
    if stream:
        with create.stream(**arguments) as streamed:
            completion = streamed.get_final_completion()
    else:
        completion = create.create(**arguments)
    choice = completion.choices[0]
    assert (choice.finish_reason, choice.message.content) == ("tool_calls", said)
    (call,) = choice.message.tool_calls
    assert json.loads(call.function.arguments) == {"city": "Lima"}
    assert len(api.lead.requests) == len(steps)

    api.lead.enqueue(reply("Warm in Lima."))
    result = {"role": "tool", "tool_call_id": call.id, "content": "warm"}
    function = {"name": call.function.name, "arguments": call.function.arguments}
    echo = {
        "role": "assistant",
        "content": choice.message.content,
        "tool_calls": [{"id": call.id, "type": "function", "function": function}],
    }
    create.create(**{**arguments, "messages": [*arguments["messages"], echo, result]})
    history = api.lead.requests[-1]["messages"]
    (calling,) = [m for m in history if "get_weather" in json.dumps(m.get("tool_calls"))]
    assert calling["content"] == said  # one assistant message, as the lead wrote it


def test_the_text_beside_the_apps_tool_calls_has_its_logprobs(api: Api) -> None:
    tokens = (TokenLogprob("On", -0.5), TokenLogprob(" it", -0.25))
    lima = ("get_weather", {"city": "Lima"})
    api.lead.enqueue(tool_calls(lima, content="On it", logprobs=tokens))
    completion = ask(api, "understudy-llm", "Weather in Lima?", tools=[WEATHER], logprobs=True)
    choice = completion.choices[0]
    assert choice.message.content == "On it" and choice.message.tool_calls
    assert [(e.token, e.logprob) for e in choice.logprobs.content] == [("On", -0.5), (" it", -0.25)]

    api.lead.enqueue(tool_calls(lima))
    calls_alone = ask(api, "understudy-llm", "Weather in Lima?", tools=[WEATHER], logprobs=True)
    assert calls_alone.choices[0].message.content is None
    assert calls_alone.choices[0].logprobs.content == []  # no text, so no tokens


def test_cascade_with_callable_tools_goes_to_the_lead(api: Api) -> None:
    api.lead.enqueue(tool_calls(("get_weather", {"city": "Nice"})))
    completion = ask(api, "understudy-cascade", SHORT_QUESTION, tools=[WEATHER])
    assert understudy(completion)["route"] == "cascade:lead"
    assert completion.choices[0].finish_reason == "tool_calls"
    assert "get_weather" in sent_tool_names(api.lead.requests[-1])


def test_cascade_with_tool_choice_none_stays_a_cascade(api: Api) -> None:
    completion = ask(api, "understudy-cascade", SHORT_QUESTION, tools=[WEATHER], tool_choice="none")
    assert understudy(completion)["route"] == "cascade:accepted:math"
    assert completion.choices[0].message.content
    assert api.lead.requests == []


def refused(api: Api, model: str, **kwargs) -> dict:
    with pytest.raises(openai.BadRequestError) as info:
        ask(api, model, SHORT_QUESTION, **kwargs)
    assert api.lead.requests == []
    return info.value.response.json()["error"]


@pytest.mark.parametrize("model", ["understudy-router", "understudy-cascade"])
def test_an_app_tool_named_like_ours_is_a_400_naming_it(api: Api, model: str) -> None:
    clash = {**WEATHER, "function": {**WEATHER["function"], "name": "calculator"}}
    error = refused(api, model, tools=[clash])
    assert error["param"] == "tools" and "'calculator'" in error["message"]


@pytest.mark.parametrize("model", ["understudy-slm", "understudy-math"])
def test_specialist_models_refuse_tools_saying_why(api: Api, model: str) -> None:
    error = refused(api, model, tools=[WEATHER])
    assert (error["param"], error["code"]) == ("tools", "unsupported_parameter")
    assert "specialists answer without tools" in error["message"]


@pytest.mark.parametrize(
    ("extra", "param", "words"),
    [
        ({"functions": [WEATHER["function"]]}, "functions", "send 'tools'"),
        ({"function_call": "auto"}, "function_call", "send 'tools'"),
        ({"tool_choice": "auto"}, "tool_choice", "only allowed when 'tools'"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "tool_choice",
            "not in 'tools'",
        ),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools", ""),
    ],
)
def test_what_cannot_be_honoured_is_refused_by_name(
    api: Api, extra: dict, param: str, words: str
) -> None:
    error = refused(api, "understudy-llm", extra_body=extra)
    assert error["param"].split(".")[0] == param and words in error["message"]


def test_a_failed_lead_with_the_apps_tools_has_no_specialist_fallback(api: Api) -> None:
    api.lead.enqueue(failure(500))
    with pytest.raises(openai.APIStatusError) as info:
        ask(api, "understudy-router", SHORT_QUESTION, tools=[WEATHER])
    assert info.value.status_code >= 500  # a specialist's text would not be the tool call asked
    assert len(api.lead.requests) == 1


def test_a_strict_tool_reaches_the_lead_strict_and_an_unstrictable_one_is_refused(
    api: Api,
) -> None:
    strict = {**WEATHER, "function": {**WEATHER["function"], "strict": True}}
    api.lead.enqueue(reply("ok"))
    ask(api, "understudy-llm", tools=[strict])
    (sent,) = api.lead.requests[-1]["tools"]
    assert sent["function"]["strict"] is True
    assert sent["function"]["parameters"]["additionalProperties"] is False

    loose = {"type": "object", "properties": {"city": 3}}
    bad = {**WEATHER, "function": {**WEATHER["function"], "strict": True, "parameters": loose}}
    api.lead.requests.clear()
    error = refused(api, "understudy-llm", tools=[bad])
    assert error["param"] == "tools.0.function" and "'strict' needs a schema" in error["message"]
