"""The ``llm`` command-line tool against the chat API: our server configured as an
OpenAI-compatible model in ``extra-openai-models.yaml`` of a fresh ``LLM_USER_PATH``, ``llm``
run as a user runs it, in a process of its own: streamed and whole answers, options,
``--schema``, and a tool round trip with ``--functions`` (the function runs in ``llm``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.testing import reply, tool_calls
from tests.api.test_chat_api import Api

APP_MODES = ["understudy-llm", "understudy-router"]


def llm(api: Api, home: Path, model: str, *args: str) -> str:
    """``llm -m MODEL ARGS`` with our server as MODEL; its output (it must succeed)."""
    config = [
        {
            "model_id": model,
            "model_name": model,
            "api_base": f"{api.url}/v1",
            "supports_tools": True,
            "supports_schema": True,
            "api_key_name": "understudy",
        }
    ]
    home.mkdir(exist_ok=True)
    (home / "extra-openai-models.yaml").write_text(yaml.safe_dump(config))
    (home / "keys.json").write_text(json.dumps({"understudy": api.key}))  # `llm keys set`
    done = subprocess.run(
        [sys.executable, "-m", "llm", "-m", model, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LLM_USER_PATH": str(home)},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("model", APP_MODES)
def test_a_streamed_answer_with_options(api: Api, tmp_path: Path, model: str) -> None:
    api.lead.enqueue(reply("Paris is the capital."))
    out = llm(api, tmp_path / "llm", model, "-o", "temperature", "0.2", "Capital?")
    assert out.strip() == "Paris is the capital."
    sent = api.lead.requests[-1]
    assert sent["temperature"] == 0.2 and sent["messages"][-1]["content"] == "Capital?"
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("model", "route"), [("understudy-llm", "lead"), ("understudy-router", "router")]
)
def test_a_whole_answer_is_logged_with_its_usage_and_our_metadata(
    api: Api, tmp_path: Path, model: str, route: str
) -> None:
    api.lead.enqueue(reply("Paris is the capital."))
    (logged,) = json.loads(llm(api, tmp_path / "llm", model, "--no-stream", "--json", "Capital?"))
    assert logged["response"] == "Paris is the capital."
    assert logged["input_tokens"] > 0 and logged["output_tokens"] > 0
    assert logged["response_json"]["understudy"]["route"] == route
    assert "stream" not in api.lead.requests[-1]


@pytest.mark.parametrize("model", APP_MODES)
def test_a_schema_answer(api: Api, tmp_path: Path, model: str) -> None:
    forecast = {"city": "Oslo", "high_celsius": 4}
    api.lead.enqueue(reply(json.dumps(forecast)))
    out = llm(api, tmp_path / "llm", model, "--schema", "city, high_celsius int", "Oslo?")
    assert json.loads(out) == forecast
    schema = api.lead.requests[-1]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["high_celsius"] == {"type": "integer"}


FUNCTIONS = '''
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"
'''


@pytest.mark.parametrize("model", APP_MODES)
@pytest.mark.parametrize("streamed", [True, False])
def test_a_tool_round_trip(api: Api, tmp_path: Path, model: str, streamed: bool) -> None:
    api.lead.enqueue(tool_calls(("get_weather", {"city": "Paris"})), reply("Sunny in Paris."))
    flags = [] if streamed else ["--no-stream"]
    out = llm(api, tmp_path / "llm", model, *flags, "--functions", FUNCTIONS, "Weather in Paris?")
    assert out.strip() == "Sunny in Paris."
    first, second = api.lead.requests
    assert "get_weather" in [tool["function"]["name"] for tool in first["tools"]]
    assert second["messages"][-1]["role"] == "tool"
    assert second["messages"][-1]["content"] == "sunny in Paris"
