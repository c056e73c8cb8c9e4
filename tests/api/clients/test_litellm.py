"""The LiteLLM SDK against the chat API, as ``openai/<model>`` with our base URL: plain and
streamed answers, the app's tools (whole, streamed, and a round trip), ``response_format``,
logprobs, and our ``x-understudy-*`` headers, which LiteLLM hands back in a response's
``_hidden_params["additional_headers"]`` prefixed ``llm_provider-``."""

from __future__ import annotations

import json
from typing import Any

import litellm
import pytest
from pydantic import BaseModel

from orchestrator.testing import reply, tool_calls
from tests.api.test_app_tools import WEATHER
from tests.api.test_chat_api import SHORT_QUESTION, Api
from tests.api.test_openai_params import LEAD_TOKENS

APP_MODES = ["understudy-llm", "understudy-router"]
QUESTION = {"role": "user", "content": "Weather in Paris?"}


def complete(api: Api, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
    return litellm.completion(
        model=f"openai/{model}",
        api_base=f"{api.url}/v1",
        api_key=api.key,
        messages=messages,
        num_retries=0,
        **kwargs,
    )


def understudy_headers(response: Any) -> dict[str, str]:
    """Our headers as LiteLLM passes them on (a streamed response's included)."""
    headers = response._hidden_params["additional_headers"]
    prefix = "llm_provider-x-understudy-"
    return {
        key.removeprefix(prefix): value for key, value in headers.items() if key.startswith(prefix)
    }


@pytest.mark.parametrize("model", APP_MODES)
def test_a_plain_answer_with_its_metadata_in_body_and_headers(api: Api, model: str) -> None:
    api.lead.enqueue(reply("Paris."))
    response = complete(api, model, [{"role": "user", "content": "Capital of France?"}], seed=3)
    assert response.choices[0].message.content == "Paris."
    meta = response.understudy  # LiteLLM keeps fields it does not know
    headers = understudy_headers(response)
    assert (headers["run-id"], headers["route"]) == (meta["run_id"], meta["route"])
    assert float(headers["cost-usd"]) == pytest.approx(meta["cost_usd"], abs=1e-8)
    assert api.lead.requests[-1]["seed"] == 3


def streamed_text(api: Api, model: str) -> tuple[str, dict[str, str]]:
    """A streamed answer to ``SHORT_QUESTION`` as LiteLLM puts it together, and our headers."""
    stream = complete(api, model, [{"role": "user", "content": SHORT_QUESTION}], stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    return text, understudy_headers(stream)


@pytest.mark.parametrize("model", APP_MODES)
def test_a_streamed_lead_answer_and_its_run_id_header(api: Api, model: str) -> None:
    api.lead.enqueue(reply("The answer is 42"))
    text, headers = streamed_text(api, model)
    assert text == "The answer is 42" and len(headers["run-id"]) == 32


def test_a_streamed_specialist_answer_has_every_header(api: Api) -> None:
    text, headers = streamed_text(api, "understudy-math")
    assert text and headers["route"] == "slm:math" and float(headers["cost-usd"]) > 0


@pytest.mark.parametrize("model", APP_MODES)
def test_a_tool_round_trip(api: Api, model: str) -> None:
    api.lead.enqueue(tool_calls(("get_weather", {"city": "Paris"})))
    first = complete(api, model, [QUESTION], tools=[WEATHER], tool_choice="auto")
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    api.lead.enqueue(reply("Sunny in Paris."))
    result = {"role": "tool", "tool_call_id": call.id, "content": "sunny"}
    second = complete(api, model, [QUESTION, choice.message.model_dump(), result], tools=[WEATHER])
    assert second.choices[0].message.content == "Sunny in Paris."
    assert api.lead.requests[-1]["messages"][-1] == result


@pytest.mark.parametrize("model", APP_MODES)
def test_streamed_tool_calls_rebuilt_by_litellm(api: Api, model: str) -> None:
    api.lead.enqueue(tool_calls(("get_weather", {"city": "Lima"})))
    chunks = list(complete(api, model, [QUESTION], tools=[WEATHER], stream=True))
    rebuilt = litellm.stream_chunk_builder(chunks)
    choice = rebuilt.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "Lima"},
    )


class Forecast(BaseModel):
    city: str
    high_celsius: int


@pytest.mark.parametrize("model", APP_MODES)
def test_response_format_as_a_pydantic_model_and_as_json_object(api: Api, model: str) -> None:
    forecast = {"city": "Oslo", "high_celsius": 4}
    question = [{"role": "user", "content": "Forecast for Oslo, as JSON?"}]
    api.lead.enqueue(reply(json.dumps(forecast)), reply(json.dumps(forecast)))
    by_schema = complete(api, model, question, response_format=Forecast)
    assert Forecast.model_validate_json(by_schema.choices[0].message.content) == Forecast(
        **forecast
    )
    spec = api.lead.requests[-1]["response_format"]["json_schema"]
    assert (spec["name"], spec["schema"]["required"]) == ("Forecast", ["city", "high_celsius"])

    by_object = complete(api, model, question, response_format={"type": "json_object"})
    assert json.loads(by_object.choices[0].message.content) == forecast
    assert api.lead.requests[-1]["response_format"] == {"type": "json_object"}


def test_logprobs_of_a_specialist_answer(api: Api) -> None:
    question = [{"role": "user", "content": SHORT_QUESTION}]
    response = complete(api, "understudy-math", question, logprobs=True, top_logprobs=2)
    entries = response.choices[0].logprobs["content"]
    assert entries and all(len(entry["top_logprobs"]) == 2 for entry in entries)


def test_logprobs_of_a_lead_answer(api: Api) -> None:
    api.lead.enqueue(reply("Paris.", logprobs=LEAD_TOKENS))
    response = complete(api, "understudy-llm", [QUESTION], logprobs=True, top_logprobs=1)
    entries = response.choices[0].logprobs["content"]
    assert [(e["token"], e["logprob"]) for e in entries] == [
        (t.token, t.logprob) for t in LEAD_TOKENS
    ]
    assert [len(entry["top_logprobs"]) for entry in entries] == [1] * len(LEAD_TOKENS)
    assert api.lead.requests[-1]["top_logprobs"] == 1


def test_a_parameter_we_cannot_honour_is_refused_by_name(api: Api) -> None:
    with pytest.raises(litellm.BadRequestError) as info:
        complete(api, "understudy-math", [QUESTION], presence_penalty=0.5)
    assert "'presence_penalty'" in str(info.value)
    assert api.lead.requests == []
