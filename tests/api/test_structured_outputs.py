"""Structured outputs (``response_format``) through the chat API with the official ``openai``
client: ``parse()`` with a pydantic model in every mode, ``json_object``, and what happens when an
answer is not the JSON asked for — the lead's is a clear failure, SmolLM2's is escalated to the
lead in ``cascade`` and a clear failure in ``slm``, never passed off as valid."""

from __future__ import annotations

import json

import openai
import pytest
from pydantic import BaseModel

from orchestrator.testing import reply
from tests.api.test_chat_api import SHORT_QUESTION, Api, ask, events, streamed_text, understudy
from tests.api.test_chat_api import api as api  # the server fixture, re-exported


class City(BaseModel):
    name: str
    population_millions: float


class Sum(BaseModel):
    answer: int


def parse(api: Api, model: str, text: str, response_format: type[BaseModel]):
    return api.client().chat.completions.parse(
        model=model, messages=[{"role": "user", "content": text}], response_format=response_format
    )


@pytest.mark.parametrize("model", ["understudy-llm", "understudy-router"])
def test_parse_with_a_pydantic_model_reaches_the_lead_and_comes_back_parsed(
    api: Api, model: str
) -> None:
    api.lead.enqueue(reply('{"name": "Paris", "population_millions": 2.1}'))
    completion = parse(api, model, "Which city is the capital of France?", City)
    assert completion.choices[0].message.parsed == City(name="Paris", population_millions=2.1)
    sent = api.lead.requests[-1]["response_format"]
    assert sent["type"] == "json_schema"
    spec = sent["json_schema"]
    assert (spec["name"], spec["strict"]) == ("City", True)
    assert spec["schema"]["required"] == ["name", "population_millions"]


def test_a_lead_answer_that_is_not_the_schema_is_a_clear_failure(api: Api) -> None:
    api.lead.enqueue(reply('{"name": "Paris"}'))  # JSON, but a required field is missing
    with pytest.raises(openai.APIStatusError) as info:
        parse(api, "understudy-llm", "Which city is the capital of France?", City)
    error = info.value.response.json()["error"]
    assert info.value.status_code == 503
    assert "did not match the requested response_format" in error["message"]


@pytest.mark.parametrize(
    ("answer", "accepted"), [('{"capital": "Paris"}', True), ('["Paris"]', False)]
)
def test_json_object_mode_accepts_a_json_object_only(api: Api, answer: str, accepted: bool) -> None:
    api.lead.enqueue(reply(answer))
    if accepted:
        completion = ask(api, "understudy-llm", response_format={"type": "json_object"})
        assert json.loads(completion.choices[0].message.content) == {"capital": "Paris"}
    else:
        with pytest.raises(openai.APIStatusError) as info:
            ask(api, "understudy-llm", response_format={"type": "json_object"})
        assert "response_format" in info.value.response.json()["error"]["message"]
    assert api.lead.requests[-1]["response_format"] == {"type": "json_object"}


def test_text_format_is_the_default(api: Api) -> None:
    api.lead.enqueue(reply("Paris."))
    completion = ask(api, "understudy-llm", response_format={"type": "text"})
    assert completion.choices[0].message.content == "Paris."
    assert "response_format" not in api.lead.requests[-1]


def test_cascade_escalates_a_draft_that_is_not_the_schema(api: Api) -> None:
    api.lead.enqueue(reply('{"answer": 42}'))
    completion = parse(api, "understudy-cascade", SHORT_QUESTION, Sum)
    assert completion.choices[0].message.parsed == Sum(answer=42)
    assert understudy(completion)["route"] == "cascade:escalated:math"
    shown = api.lead.requests[-1]
    note = shown["messages"][-1]["content"]
    assert "format check failed: the answer" in note
    assert shown["response_format"]["json_schema"]["name"] == "Sum"


@pytest.mark.parametrize("model", ["understudy-slm", "understudy-math"])
def test_slm_answer_that_is_not_the_schema_is_a_clear_failure(api: Api, model: str) -> None:
    # SmolLM2 answers "12 + 30 = 42" or "42": never an object with an integer "answer".
    with pytest.raises(openai.APIStatusError) as info:
        parse(api, model, SHORT_QUESTION, Sum)
    assert info.value.status_code == 503
    error = info.value.response.json()["error"]
    assert "did not match the requested response_format" in error["message"]
    assert api.lead.requests == []


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 12}}},
        {"type": "json_schema", "json_schema": {"name": "not a name!", "schema": {}}},
        {"type": "json_schema", "json_schema": {"name": "x"}},
        {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"enum": ["y" * 1000] * 70}},
        },
        {"type": "xml"},
        {"type": "json_object", "schema": {}},
    ],
)
def test_an_invalid_response_format_is_a_400_naming_it(api: Api, response_format: dict) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        ask(api, "understudy-llm", response_format=response_format)
    error = info.value.response.json()["error"]
    assert error["code"] == "invalid_body"
    assert error["param"].startswith("response_format"), error
    assert api.lead.requests == []


@pytest.mark.parametrize("model", ["understudy-llm", "understudy-router"])
def test_a_streamed_answer_is_checked_before_any_of_it_goes_out(api: Api, model: str) -> None:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Capital of France, as JSON?"}],
        "response_format": {"type": "json_object"},
    }
    api.lead.enqueue(reply('{"capital": "Paris"}'))
    response, received = events(api, body)
    assert response.status_code == 200
    assert json.loads(streamed_text(received)) == {"capital": "Paris"}

    api.lead.enqueue(reply("The capital is Paris."))
    response, received = events(api, body)
    assert streamed_text(received) == ""  # not one token of the prose went out
    error = next(e["error"] for e in received if isinstance(e, dict) and "error" in e)
    assert error["code"] == "upstream_unavailable"
    assert "did not match the requested response_format" in error["message"]
    assert received[-1] == "[DONE]"
