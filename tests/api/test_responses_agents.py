"""The openai-agents SDK with its default model — OpenAI's Responses API — against Understudy:
an agent with its own ``@function_tool`` and an ``output_type`` runs end to end, its tool run by
the SDK on the lead's call, its final output parsed from the structured answer."""

from __future__ import annotations

import pytest
from agents import Agent, RunConfig, Runner, function_tool
from agents.models.openai_provider import OpenAIProvider
from agents.models.openai_responses import OpenAIResponsesModel
from openai import AsyncOpenAI
from pydantic import BaseModel

from orchestrator.testing import reply, tool_calls
from tests.api.test_chat_api import Api
from tests.api.test_chat_api import api as api  # the server fixture, re-exported


class Forecast(BaseModel):
    city: str
    sky: str


@function_tool
def get_weather(city: str) -> str:
    """The sky over a city today.

    Args:
        city: The city's name.
    """
    return f"sunny over {city}"


@pytest.mark.parametrize("model", ["understudy-llm", "understudy-router"])
def test_an_agent_with_its_own_tool_and_output_type(api: Api, model: str) -> None:
    api.lead.enqueue(
        tool_calls(("get_weather", {"city": "Paris"})),
        reply('{"city": "Paris", "sky": "sunny"}'),
    )
    client = AsyncOpenAI(base_url=f"{api.url}/v1", api_key=api.key, max_retries=0)
    provider = OpenAIProvider(openai_client=client)
    assert isinstance(provider.get_model(model), OpenAIResponsesModel)  # the SDK's default
    agent = Agent(
        name="forecaster",
        instructions="Report the weather.",
        model=model,
        tools=[get_weather],
        output_type=Forecast,
    )
    result = Runner.run_sync(
        agent,
        "What is the weather in Paris?",
        run_config=RunConfig(model_provider=provider, tracing_disabled=True),
    )
    assert result.final_output == Forecast(city="Paris", sky="sunny")
    first, second = api.lead.requests
    assert "get_weather" in [tool["function"]["name"] for tool in first["tools"]]
    assert {"role": "system", "content": "Report the weather."} in first["messages"]
    assert second["messages"][-1]["content"] == "sunny over Paris"  # the SDK ran its tool
    assert second["response_format"]["type"] == "json_schema"
    assert result.context_wrapper.usage.input_tokens > 0
