"""The openai-agents SDK against the chat API, through ``OpenAIChatCompletionsModel`` (its model
for any OpenAI-compatible server): an agent's own ``@function_tool`` runs on the client and its
result reaches the lead, a handoff is the app's tool call it is, an ``output_type`` comes back
parsed (whole and streamed), ``ModelSettings`` reach the lead, and a specialist's answer and the
lead's carry the logprobs ``top_logprobs`` asks for."""

from __future__ import annotations

import json

import pytest
from agents import (
    Agent,
    ModelSettings,
    OpenAIChatCompletionsModel,
    RunConfig,
    Runner,
    function_tool,
)
from agents.result import RunResultBase
from openai import AsyncOpenAI
from pydantic import BaseModel

from orchestrator.testing import reply, tool_calls
from tests.api.test_chat_api import SHORT_QUESTION, Api
from tests.api.test_openai_params import LEAD_TOKENS

APP_MODES = ["understudy-llm", "understudy-router"]
LOCAL = RunConfig(tracing_disabled=True)
"""The client's runs trace nothing: the server's transcript recorder is this process's."""


def chat_model(api: Api, model: str) -> OpenAIChatCompletionsModel:
    client = AsyncOpenAI(base_url=f"{api.url}/v1", api_key=api.key, max_retries=0)
    return OpenAIChatCompletionsModel(model=model, openai_client=client)


@pytest.mark.parametrize("model", APP_MODES)
@pytest.mark.parametrize("streamed", [False, True])
async def test_an_agents_own_function_tool_runs_and_its_result_reaches_the_lead(
    api: Api, model: str, streamed: bool
) -> None:
    asked: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city.

        Args:
            city: The city's name.
        """
        asked.append(city)
        return f"sunny in {city}"

    agent = Agent(
        name="weather",
        instructions="Answer with the weather tool.",
        tools=[get_weather],
        model=chat_model(api, model),
    )
    api.lead.enqueue(tool_calls(("get_weather", {"city": "Paris"})), reply("Sunny in Paris."))
    if streamed:
        result: RunResultBase = Runner.run_streamed(agent, "Weather in Paris?", run_config=LOCAL)
        events = [event.type async for event in result.stream_events()]
        assert "run_item_stream_event" in events
    else:
        result = await Runner.run(agent, "Weather in Paris?", run_config=LOCAL)

    assert asked == ["Paris"]
    assert result.final_output == "Sunny in Paris."
    first, second = api.lead.requests
    assert "get_weather" in [tool["function"]["name"] for tool in first["tools"]]
    assert second["messages"][-1]["role"] == "tool"
    assert second["messages"][-1]["content"] == "sunny in Paris"


class Forecast(BaseModel):
    city: str
    high_celsius: int


@pytest.mark.parametrize("model", APP_MODES)
@pytest.mark.parametrize("streamed", [False, True])
async def test_an_agents_output_type_comes_back_parsed(
    api: Api, model: str, streamed: bool
) -> None:
    agent = Agent(
        name="forecaster",
        instructions="Give the forecast.",
        output_type=Forecast,
        model=chat_model(api, model),
    )
    api.lead.enqueue(reply(json.dumps({"city": "Oslo", "high_celsius": 4})))
    if streamed:
        result: RunResultBase = Runner.run_streamed(agent, "Forecast for Oslo?", run_config=LOCAL)
        async for _event in result.stream_events():
            pass
    else:
        result = await Runner.run(agent, "Forecast for Oslo?", run_config=LOCAL)
    assert result.final_output == Forecast(city="Oslo", high_celsius=4)
    sent = api.lead.requests[-1]["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["schema"]["required"] == ["city", "high_celsius"]


async def test_a_handoff_and_the_model_settings_reach_the_lead(api: Api) -> None:
    """In ``router`` the handoff is one more app tool beside ours: the lead's call of it comes
    back to the SDK, which switches agents."""
    spanish = Agent(
        name="spanish", instructions="Answer in Spanish.", model=chat_model(api, "understudy-llm")
    )
    settings = ModelSettings(
        tool_choice="required",
        parallel_tool_calls=False,
        temperature=0.1,
        top_p=0.5,
        max_tokens=40,
        metadata={"app": "tests"},
    )
    triage = Agent(
        name="triage",
        instructions="Hand off to the right agent.",
        handoffs=[spanish],
        model=chat_model(api, "understudy-router"),
        model_settings=settings,
    )
    api.lead.enqueue(tool_calls(("transfer_to_spanish", {})), reply("Hola."))
    result = await Runner.run(triage, "Hi", run_config=LOCAL)
    assert (result.final_output, result.last_agent.name) == ("Hola.", "spanish")
    first, second = api.lead.requests
    assert {key: first[key] for key in ("tool_choice", "parallel_tool_calls", "metadata")} == {
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "metadata": {"app": "tests"},
    }
    assert (first["temperature"], first["top_p"], first["max_tokens"]) == (0.1, 0.5, 40)
    assert {"transfer_to_spanish", "math_specialist"} <= {
        t["function"]["name"] for t in first["tools"]
    }
    assert second["messages"][-1]["role"] == "tool" and "tools" not in second


async def test_top_logprobs_of_a_specialist_answer(api: Api) -> None:
    agent = Agent(
        name="math",
        instructions="Be brief.",
        model=chat_model(api, "understudy-math"),
        model_settings=ModelSettings(top_logprobs=2),
    )
    result = await Runner.run(agent, SHORT_QUESTION, run_config=LOCAL)
    (message,) = [item for item in result.new_items if item.type == "message_output_item"]
    logprobs = message.raw_item.content[0].logprobs
    assert logprobs and all(len(entry.top_logprobs) == 2 for entry in logprobs)
    assert result.context_wrapper.usage.output_tokens > 0
    assert api.lead.requests == []


@pytest.mark.parametrize("streamed", [False, True])
async def test_top_logprobs_of_a_lead_answer(api: Api, streamed: bool) -> None:
    agent = Agent(
        name="geography",
        instructions="Be brief.",
        model=chat_model(api, "understudy-llm"),
        model_settings=ModelSettings(top_logprobs=1),
    )
    api.lead.enqueue(reply("Paris.", logprobs=LEAD_TOKENS))
    result: RunResultBase
    if streamed:
        result = Runner.run_streamed(agent, "Capital of France?", run_config=LOCAL)
        async for _event in result.stream_events():
            pass
    else:
        result = await Runner.run(agent, "Capital of France?", run_config=LOCAL)
    (message,) = [item for item in result.new_items if item.type == "message_output_item"]
    logprobs = message.raw_item.content[0].logprobs
    assert [(e.token, e.logprob, len(e.top_logprobs)) for e in logprobs] == [
        (t.token, t.logprob, 1) for t in LEAD_TOKENS
    ]
    assert api.lead.requests[-1]["top_logprobs"] == 1
