"""OpenAI's Responses API (``/v1/responses``) with the official ``openai`` client against a real
server: plain and streamed answers in every mode, the app's function tools round trip (by
``function_call_output`` items, and by ``previous_response_id``), ``text.format`` with
``responses.parse``, stored responses and their owners, refusals by name; the same routing
metadata and transcripts as the chat API."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest
from openai.types.responses import Response
from pydantic import BaseModel

from orchestrator.testing import failure, reply, tool_calls
from serving.keys import KeyStore
from tests.api.test_chat_api import SHORT_QUESTION, Api, recorded_run
from tests.api.test_chat_api import api as api  # the server fixture, re-exported
from tests.helpers.stores import open_store

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


def understudy(response: Response) -> dict:
    return response.model_extra["understudy"]


def raw_create(api: Api, **body) -> Response:
    """A response, checked against the ``openai`` package's own ``Response`` type."""
    raw = api.client().responses.with_raw_response.create(**body)
    payload = json.loads(raw.text)
    Response.model_validate(payload)
    assert raw.headers["x-understudy-run-id"] == payload["understudy"]["run_id"]
    assert raw.headers["x-understudy-route"] == payload["understudy"]["route"]
    return raw.parse()


def test_a_string_input_with_instructions_reaches_the_lead(api: Api) -> None:
    api.lead.enqueue(reply("Paris."))
    response = raw_create(
        api, model="understudy-llm", input="Capital of France?", instructions="Be brief."
    )
    assert response.output_text == "Paris." and response.status == "completed"
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert understudy(response)["route"] == "lead"
    sent = api.lead.requests[-1]["messages"]
    assert {"role": "system", "content": "Be brief."} in sent
    assert sent[-1] == {"role": "user", "content": "Capital of France?"}
    record = asyncio.run(recorded_run(api, understudy(response)["run_id"]))
    assert record.answer == "Paris." and record.mode == "llm"


def test_message_items_keep_their_roles(api: Api) -> None:
    api.lead.enqueue(reply("You are Ada."))
    response = api.client().responses.create(
        model="understudy-llm",
        input=[
            {"role": "developer", "content": "Answer in three words."},
            {"role": "user", "content": "My name is Ada."},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Hello Ada.", "annotations": []}],
            },
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Who am I?"}],
            },
        ],
    )
    assert response.output_text == "You are Ada."
    sent = [m for m in api.lead.requests[-1]["messages"] if m["content"] != ""]
    assert [m["role"] for m in sent][-4:] == ["system", "user", "assistant", "user"]
    assert sent[-2]["content"] == "Hello Ada." and sent[-1]["content"] == "Who am I?"


@pytest.mark.parametrize(
    ("model", "route"),
    [("understudy-cascade", "cascade:accepted:math"), ("understudy-math", "slm:math")],
)
def test_specialist_models_answer_without_the_lead(api: Api, model: str, route: str) -> None:
    response = raw_create(api, model=model, input=SHORT_QUESTION)
    assert response.output_text and understudy(response)["route"] == route
    assert api.lead.requests == []


@pytest.mark.parametrize("model", ["understudy-llm", "understudy-router"])
def test_a_function_tool_round_trip(api: Api, model: str) -> None:
    client = api.client()
    api.lead.enqueue(tool_calls(("get_weather", {"city": "Paris"})))
    first = raw_create(
        api,
        model=model,
        input="Weather in Paris?",
        tools=[WEATHER],
        tool_choice="required",
        parallel_tool_calls=False,
    )
    (call,) = first.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"} and first.output_text == ""
    sent = api.lead.requests[-1]
    assert any(t["function"]["name"] == "get_weather" for t in sent["tools"])
    assert (sent["tool_choice"], sent["parallel_tool_calls"]) == ("required", False)

    api.lead.enqueue(reply("Sunny in Paris."))
    second = client.responses.create(
        model=model,
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
        tools=[WEATHER],
    )
    assert second.output_text == "Sunny in Paris."
    history = api.lead.requests[-1]["messages"]
    assistant = next(m for m in history if m.get("tool_calls"))
    assert assistant["tool_calls"][0]["id"] == call.call_id
    assert history[-1] == {"role": "tool", "tool_call_id": call.call_id, "content": "sunny"}


def test_previous_response_id_continues_the_stored_conversation(api: Api) -> None:
    client = api.client()
    api.lead.enqueue(tool_calls(("get_weather", {"city": "Oslo"})))
    first = client.responses.create(
        model="understudy-router", input="Weather in Oslo?", tools=[WEATHER]
    )
    (call,) = first.output
    api.lead.enqueue(reply("Snow in Oslo."))
    second = client.responses.create(
        model="understudy-router",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "snow"}],
        tools=[WEATHER],
    )
    assert second.output_text == "Snow in Oslo." and second.previous_response_id == first.id
    history = api.lead.requests[-1]["messages"]
    assert {"role": "user", "content": "Weather in Oslo?"} in history
    assert history[-1] == {"role": "tool", "tool_call_id": call.call_id, "content": "snow"}

    api.lead.enqueue(reply("You asked about Oslo."))
    third = client.responses.create(
        model="understudy-llm", previous_response_id=second.id, input="What did I ask?"
    )
    assert third.output_text == "You asked about Oslo."
    contents = [m["content"] for m in api.lead.requests[-1]["messages"]]
    assert "Snow in Oslo." in contents and contents[-1] == "What did I ask?"


def test_stored_responses_are_retrieved_deleted_and_private_to_their_key(api: Api) -> None:
    client = api.client()
    api.lead.enqueue(reply("Kept."))
    kept = client.responses.create(model="understudy-llm", input="Keep this.")
    assert client.responses.retrieve(kept.id).output_text == "Kept."

    async def other_key() -> str:
        keys = await open_store(KeyStore, api.settings.database_url)
        _, plaintext = await keys.create("someone else")
        await keys.database.close()
        return plaintext

    stranger = api.client(asyncio.run(other_key()))
    with pytest.raises(openai.NotFoundError):
        stranger.responses.retrieve(kept.id)
    with pytest.raises(openai.NotFoundError):
        stranger.responses.delete(kept.id)
    with pytest.raises(openai.NotFoundError) as refused:
        stranger.responses.create(
            model="understudy-llm", previous_response_id=kept.id, input="Go on."
        )
    assert refused.value.response.json()["error"]["param"] == "previous_response_id"

    client.responses.delete(kept.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(kept.id)

    api.lead.enqueue(reply("Not kept."))
    unkept = client.responses.create(model="understudy-llm", input="Forget this.", store=False)
    assert unkept.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unkept.id)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"reasoning": {"effort": "low"}}, "reasoning"),
        ({"background": True}, "background"),
        ({"tools": [{"type": "web_search"}]}, "tools"),
        ({"include": ["message.output_text.logprobs"]}, "include"),
        ({"truncation": "auto"}, "truncation"),
        ({"input": [{"type": "input_image", "image_url": "x"}]}, "input"),
        ({"tool_choice": "auto"}, "tool_choice"),
    ],
)
def test_what_cannot_be_honoured_is_refused_by_name(api: Api, extra: dict, param: str) -> None:
    body = {"model": "understudy-llm", "input": "Hi.", **extra}
    with pytest.raises(openai.BadRequestError) as info:
        api.client().responses.create(**body)
    error = info.value.response.json()["error"]
    assert error["param"].split(".")[0] == param
    assert api.lead.requests == []


def test_slm_refuses_the_apps_tools_by_name(api: Api) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        api.client().responses.create(model="understudy-slm", input=SHORT_QUESTION, tools=[WEATHER])
    assert info.value.response.json()["error"]["param"] == "tools"


def test_nulls_mean_the_defaults(api: Api) -> None:
    api.lead.enqueue(reply("Fine."))
    response = api.client().responses.create(
        model="understudy-llm",
        input="Hi.",
        extra_body={
            "instructions": None,
            "temperature": None,
            "top_p": None,
            "max_output_tokens": None,
            "metadata": None,
            "store": None,
            "text": None,
            "tools": None,
            "previous_response_id": None,
        },
    )
    assert response.output_text == "Fine." and response.store is True


def test_sampling_and_attribution_reach_the_lead(api: Api) -> None:
    api.lead.enqueue(reply("Fine."))
    response = api.client().responses.create(
        model="understudy-llm",
        input="Hi.",
        temperature=0.2,
        top_p=0.9,
        max_output_tokens=64,
        metadata={"app": "tests"},
        user="user-7",
    )
    sent = api.lead.requests[-1]
    assert (sent["temperature"], sent["top_p"], sent["user"]) == (0.2, 0.9, "user-7")
    assert sent["metadata"] == {"app": "tests"}
    assert response.temperature == 0.2 and response.metadata == {"app": "tests"}


# ---------------------------------------------------------------- streaming


@pytest.mark.parametrize("model", ["understudy-llm", "understudy-router", "understudy-math"])
def test_a_streamed_answer_comes_as_typed_events(api: Api, model: str) -> None:
    api.lead.enqueue(reply("The answer is 42 indeed"))
    with api.client().responses.stream(model=model, input=SHORT_QUESTION) as stream:
        received = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in received]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in received] == list(range(len(received)))
    deltas = [event.delta for event in received if event.type == "response.output_text.delta"]
    assert "".join(deltas) == final.output_text and final.status == "completed"
    if model != "understudy-math":
        assert final.output_text == "The answer is 42 indeed" and len(deltas) > 1
    assert final.model_extra["understudy"]["run_id"]
    assert api.client().responses.retrieve(final.id).output_text == final.output_text


def test_streamed_function_calls_and_their_continuation(api: Api) -> None:
    api.lead.enqueue(tool_calls(("get_weather", {"city": "Lima"})))
    with api.client().responses.stream(
        model="understudy-llm", input="Weather in Lima?", tools=[WEATHER]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    assert kinds[-1] == "response.completed"
    (call,) = final.output
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Lima"}

    api.lead.enqueue(reply("Warm in Lima."))
    with api.client().responses.stream(
        model="understudy-llm",
        previous_response_id=final.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "warm"}],
        tools=[WEATHER],
    ) as stream:
        assert stream.get_final_response().output_text == "Warm in Lima."


@pytest.mark.parametrize("stream", [False, True])
def test_the_text_beside_function_calls_is_a_message_item_before_them(
    api: Api, stream: bool
) -> None:
    said = "Let me look that up."
    api.lead.enqueue(tool_calls(("get_weather", {"city": "Lima"}), content=said))
    arguments = {"model": "understudy-router", "input": "Weather in Lima?", "tools": [WEATHER]}
    if stream:
        with api.client().responses.stream(**arguments) as streamed:
            first = streamed.get_final_response()
    else:
        first = raw_create(api, **arguments)
    message, call = first.output
    assert message.type == "message" and first.output_text == said
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Lima"}

    api.lead.enqueue(reply("Warm in Lima."))
    api.client().responses.create(
        model="understudy-router",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "warm"}],
        tools=[WEATHER],
    )
    assistant = next(m for m in api.lead.requests[-1]["messages"] if m.get("tool_calls"))
    assert assistant["content"] == said


def test_a_stream_whose_run_fails_ends_with_response_failed(api: Api) -> None:
    api.lead.enqueue(failure(500))
    events = list(api.client().responses.create(model="understudy-llm", input="Hi.", stream=True))
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.failed",
    ]
    failed = events[-1].response
    assert failed.status == "failed" and "lead model" in failed.error.message


# ---------------------------------------------------------------- structured outputs


class City(BaseModel):
    name: str
    population_millions: float


def test_parse_with_a_pydantic_text_format(api: Api) -> None:
    api.lead.enqueue(reply('{"name": "Paris", "population_millions": 2.1}'))
    parsed = api.client().responses.parse(
        model="understudy-llm", input="Capital of France?", text_format=City
    )
    assert parsed.output_parsed == City(name="Paris", population_millions=2.1)
    sent = api.lead.requests[-1]["response_format"]
    assert (sent["type"], sent["json_schema"]["name"]) == ("json_schema", "City")
    assert sent["json_schema"]["schema"]["required"] == ["name", "population_millions"]


def test_an_answer_that_is_not_the_format_is_a_clear_failure(api: Api) -> None:
    api.lead.enqueue(reply("Paris, of course."))
    with pytest.raises(openai.APIStatusError) as info:
        api.client().responses.create(
            model="understudy-llm", input="Capital?", text={"format": {"type": "json_object"}}
        )
    assert info.value.status_code == 503
    assert "response_format" in info.value.response.json()["error"]["message"]


# ---------------------------------------------------------------- degradation


def test_a_degraded_answer_is_marked_and_the_policy_can_refuse_it(api: Api) -> None:
    api.lead.enqueue(failure(500))
    raw = api.client().responses.with_raw_response.create(
        model="understudy-router", input=SHORT_QUESTION
    )
    response = raw.parse()
    assert raw.headers["x-understudy-degraded"] == "true"
    assert understudy(response)["degraded"] is True and response.output_text

    api.lead.enqueue(failure(500))
    with pytest.raises(openai.APIStatusError) as info:
        api.client().responses.create(
            model="understudy-router",
            input=SHORT_QUESTION,
            extra_body={"understudy": {"on_degraded": "error"}},
        )
    assert info.value.status_code == 503
    assert info.value.response.json()["error"]["code"] == "degraded"


def test_a_degraded_stream_sends_the_fallback_whole_or_fails_as_the_policy_asks(
    api: Api,
) -> None:
    api.lead.enqueue(failure(500))
    with api.client().responses.stream(model="understudy-router", input=SHORT_QUESTION) as stream:
        final = stream.get_final_response()
    assert final.output_text and final.model_extra["understudy"]["degraded"] is True

    api.lead.enqueue(failure(500))
    received = list(
        api.client().responses.create(
            model="understudy-router",
            input=SHORT_QUESTION,
            stream=True,
            extra_body={"understudy": {"on_degraded": "error"}},
        )
    )
    assert received[-1].type == "response.failed"
    assert not [e for e in received if e.type == "response.output_text.delta"]


def test_a_specialist_answer_cut_at_max_output_tokens_is_incomplete(api: Api) -> None:
    response = raw_create(api, model="understudy-math", input=SHORT_QUESTION, max_output_tokens=2)
    assert response.status == "incomplete" and response.output_text
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].status == "incomplete"
