"""The `understudy` console script as users run it: a real subprocess, real model, real errors."""

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.helpers.cli import understudy
from tests.helpers.http_server import free_port


def test_ask_code_specialist_answers_from_smollm2(home_with_smollm2: Path) -> None:
    result = understudy(
        "ask", "Write a Python function that reverses a string.", "--specialist", "code", "--json"
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["mode"] == "slm" and answer["route"] == "slm:code"  # no lead configured
    assert "def " in answer["answer"] and answer["specialists"] == ["code"]
    assert 0 < answer["confidence"] <= 1 and answer["escalated"] is False
    assert answer["slm_tokens"] > 0 and answer["lead_tokens"] == 0 and answer["latency_ms"] > 0
    assert answer["cost_usd"] > 0  # the configured SLM price per million tokens

    listed = understudy("runs", "list", "--json")
    assert json.loads(listed.stdout.splitlines()[0])["id"] == answer["run_id"]
    shown = json.loads(understudy("runs", "show", answer["run_id"], "--json").stdout)
    assert shown["tool_calls"][0]["name"] == "code_specialist"
    assert shown["tool_calls"][0]["output"] == answer["answer"]
    assert shown["finish_reason"] == answer["finish_reason"]  # kept by the transcript
    text = understudy("runs", "show", answer["run_id"]).stdout
    assert "code_specialist" in text and f"finish_reason {answer['finish_reason']}" in text


def test_runs_show_unknown_id() -> None:
    result = understudy("runs", "show", "no-such-run")
    assert result.returncode == 1 and "no-such-run" in result.stderr


def test_modes_that_need_a_lead_say_which_setting(home_with_smollm2: Path) -> None:
    result = understudy("ask", "hi", "--mode", "router")
    assert result.returncode == 1
    assert "needs a lead model" in result.stderr and "UNDERSTUDY_LEAD_MODEL" in result.stderr


def test_ask_human_output_shows_confidence_tokens_latency(home_with_smollm2: Path) -> None:
    result = understudy("ask", "What is 12 + 30?", "--specialist", "math", "--max-tokens", "24")
    assert result.returncode == 0, result.stderr
    assert "slm:math" in result.stdout and "confidence" in result.stdout
    assert "tokens" in result.stdout and " ms" in result.stdout


def test_unknown_specialist_lists_the_known_ones() -> None:
    result = understudy("ask", "hi", "--specialist", "poetry")
    assert result.returncode == 1
    assert "unknown specialist 'poetry'; known specialists: code, email, math" in result.stderr


def test_corrupt_model_names_the_file_and_the_fix(isolated_env: Path, tiny_model_dir: Path) -> None:
    model = isolated_env / "models" / "smollm2-135m"
    shutil.copytree(tiny_model_dir, model)
    weights = model / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    result = understudy("ask", "hi", "--specialist", "math")
    assert result.returncode == 1
    assert f"{weights}: truncated or corrupt" in result.stderr.replace("\n", "")
    assert "understudy models pull smollm2-135m --force" in result.stderr


def test_missing_model_without_auto_pull_says_how_to_pull(isolated_env: Path) -> None:
    result = understudy(
        "ask", "hi", "--specialist", "math", env={"UNDERSTUDY_SLM_AUTO_PULL": "false"}
    )
    assert result.returncode == 1
    assert "run `understudy models pull smollm2-135m`" in result.stderr


def test_slm_server_down_is_unavailable_within_the_timeout() -> None:
    env = {
        "UNDERSTUDY_SLM_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
        "UNDERSTUDY_SLM_TIMEOUT_S": "2",
    }
    started = time.monotonic()
    result = understudy("ask", "hi", "--specialist", "math", "--backend", "vllm", env=env)
    assert result.returncode == 1
    assert "specialist 'math' failed: unavailable after" in result.stderr.replace("\n", "")
    assert time.monotonic() - started < 15  # interpreter start-up + the 2 s deadline


def test_models_pull_from_a_local_directory(isolated_env: Path, tiny_model_dir: Path) -> None:
    result = understudy("models", "pull", "tiny", "--from", str(tiny_model_dir))
    assert result.returncode == 0, result.stderr
    assert "tiny: ready at" in result.stdout
    listing = understudy("models", "list")
    assert "tiny: ok" in listing.stdout


@pytest.mark.parametrize("args", [["--help"], ["ask", "--help"], ["slm", "serve", "--help"]])
def test_help_teaches(args: list[str]) -> None:
    result = understudy(*args)
    assert result.returncode == 0
    assert "Usage" in result.stdout
