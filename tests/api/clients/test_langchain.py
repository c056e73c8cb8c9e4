"""LangChain's ``ChatOpenAI`` against the chat API, as a LangChain app uses it: ``bind_tools``
(with its options) and a tool round trip with a ``ToolMessage``, streamed tool-call chunks
assembled, ``with_structured_output`` with each of its methods (whole, streamed, with the raw
message), streamed usage, logprobs and our response headers."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, SecretStr

from orchestrator.testing import Step, reply, tool_calls
from tests.api.test_app_tools import WEATHER
from tests.api.test_chat_api import SHORT_QUESTION, Api

APP_MODES = ["understudy-llm", "understudy-router"]


class Forecast(BaseModel):
    """A city's forecast."""

    city: str
    high_celsius: int


FORECAST = {"city": "Oslo", "high_celsius": 4}


def chat(api: Api, model: str, **kwargs: Any) -> ChatOpenAI:
    return ChatOpenAI(
        model=model, base_url=f"{api.url}/v1", api_key=SecretStr(api.key), max_retries=0, **kwargs
    )


@pytest.mark.parametrize("model", APP_MODES)
def test_bound_tools_are_called_and_the_tool_result_continues_the_conversation(
    api: Api, model: str
) -> None:
    llm = chat(api, model).bind_tools([WEATHER])
    question = HumanMessage("Weather in Paris?")
    api.lead.enqueue(tool_calls(("get_weather", {"city": "Paris"})))
    called = llm.invoke([question])
    assert isinstance(called, AIMessage)
    (call,) = called.tool_calls
    assert (call["name"], call["args"]) == ("get_weather", {"city": "Paris"})
    assert called.response_metadata["finish_reason"] == "tool_calls"

    api.lead.enqueue(reply("Sunny in Paris."))
    result = ToolMessage('{"sky": "sunny"}', tool_call_id=call["id"])
    answered = llm.invoke([question, called, result])
    assert answered.content == "Sunny in Paris." and not answered.tool_calls
    history = api.lead.requests[-1]["messages"]
    assert history[-1] == {
        "role": "tool",
        "tool_call_id": call["id"],
        "content": '{"sky": "sunny"}',
    }
    assert history[-2]["tool_calls"][0]["id"] == call["id"]


@pytest.mark.parametrize("model", APP_MODES)
def test_streamed_tool_call_chunks_add_up_to_the_call(api: Api, model: str) -> None:
    api.lead.enqueue(
        tool_calls(("get_weather", {"city": "Lima"}), ("get_weather", {"city": "Quito"}))
    )
    chunks = list(chat(api, model).bind_tools([WEATHER]).stream("Weather in Lima and Quito?"))
    gathered = sum(chunks[1:], chunks[0])
    assert isinstance(gathered, AIMessageChunk)
    assert [(c["name"], c["args"]) for c in gathered.tool_calls] == [
        ("get_weather", {"city": "Lima"}),
        ("get_weather", {"city": "Quito"}),
    ]
    assert gathered.response_metadata["finish_reason"] == "tool_calls"


class GetWeather(BaseModel):
    """The weather in a city."""

    city: str


def test_a_pydantic_tool_strict_required_and_serial_reaches_the_lead(api: Api) -> None:
    llm = chat(api, "understudy-llm").bind_tools(
        [GetWeather], tool_choice="any", parallel_tool_calls=False, strict=True
    )
    api.lead.enqueue(tool_calls(("GetWeather", {"city": "Paris"})))
    assert llm.invoke("Weather in Paris?").tool_calls[0]["args"] == {"city": "Paris"}
    sent = api.lead.requests[-1]
    assert (sent["tool_choice"], sent["parallel_tool_calls"]) == ("required", False)
    (tool,) = sent["tools"]
    assert tool["function"]["name"] == "GetWeather" and tool["function"]["strict"] is True


def forecast_step(method: str) -> Step:
    """What the lead answers when LangChain asks for a ``Forecast`` with ``method``: a call of
    the tool named after the schema, or the JSON."""
    if method == "function_calling":
        return tool_calls(("Forecast", FORECAST))
    return reply(json.dumps(FORECAST))


def assert_asked_for_a_forecast(sent: dict, method: str) -> None:
    if method == "function_calling":
        assert sent["tool_choice"] == {"type": "function", "function": {"name": "Forecast"}}
        assert [tool["function"]["name"] for tool in sent["tools"]][-1] == "Forecast"
    elif method == "json_mode":
        assert sent["response_format"] == {"type": "json_object"}
    else:
        spec = sent["response_format"]["json_schema"]
        assert (spec["name"], spec["schema"]["required"]) == ("Forecast", ["city", "high_celsius"])


METHODS = ["function_calling", "json_mode", "json_schema"]


@pytest.mark.parametrize("model", APP_MODES)
@pytest.mark.parametrize("method", METHODS)
def test_structured_output_by_each_method(api: Api, model: str, method: str) -> None:
    api.lead.enqueue(forecast_step(method))
    structured = chat(api, model).with_structured_output(Forecast, method=method)
    assert structured.invoke("Forecast for Oslo, as JSON?") == Forecast(**FORECAST)
    assert_asked_for_a_forecast(api.lead.requests[-1], method)


@pytest.mark.parametrize("method", METHODS)
def test_streamed_structured_output_by_each_method(api: Api, method: str) -> None:
    api.lead.enqueue(forecast_step(method))
    structured = chat(api, "understudy-llm").with_structured_output(Forecast, method=method)
    assert list(structured.stream("Forecast for Oslo, as JSON?"))[-1] == Forecast(**FORECAST)
    assert_asked_for_a_forecast(api.lead.requests[-1], method)


@pytest.mark.parametrize("method", METHODS)
def test_structured_output_with_the_raw_message(api: Api, method: str) -> None:
    api.lead.enqueue(forecast_step(method))
    structured = chat(api, "understudy-llm").with_structured_output(
        Forecast, method=method, include_raw=True
    )
    result = structured.invoke("Forecast for Oslo, as JSON?")
    assert result["parsed"] == Forecast(**FORECAST) and result["parsing_error"] is None
    assert result["raw"].response_metadata["model_name"] == "understudy-llm"


@pytest.mark.parametrize("model", APP_MODES)
def test_plain_and_streamed_answers(api: Api, model: str) -> None:
    api.lead.enqueue(reply("Paris is the capital."), reply("Paris is the capital."))
    llm = chat(
        api,
        model,
        temperature=0.2,
        stop=["END"],
        include_response_headers=True,
        stream_usage=True,
    )
    answer = llm.invoke("Capital of France?")
    assert answer.content == "Paris is the capital."
    headers = answer.response_metadata["headers"]
    assert headers["x-understudy-route"] == model.removeprefix("understudy-").replace("llm", "lead")
    assert len(headers["x-understudy-run-id"]) == 32  # LangChain keeps no unknown body field
    chunks = list(llm.stream("Capital of France?"))
    streamed = sum(chunks[1:], chunks[0])
    assert streamed.content == "Paris is the capital."
    assert streamed.usage_metadata and streamed.usage_metadata["total_tokens"] > 0
    sent = api.lead.requests[-1]
    assert (sent["temperature"], sent["stop"]) == (0.2, ["END"])
    assert sent["stream_options"] == {"include_usage": True}


def test_logprobs_of_a_specialist_answer(api: Api) -> None:
    answer = chat(api, "understudy-math", logprobs=True, top_logprobs=2).invoke(SHORT_QUESTION)
    entries = answer.response_metadata["logprobs"]["content"]
    assert entries and all(len(entry["top_logprobs"]) == 2 for entry in entries)
    assert all(math.isfinite(entry["logprob"]) for entry in entries)
