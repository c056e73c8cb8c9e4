"""``understudy eval run`` as users run it: a real subprocess, SmolLM2 on the local backend, real
GSM8K, a scripted lead on 127.0.0.1 — and a rerun that must cost nothing."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from evals.data import DataSource
from evals.errors import UnknownSuiteError
from evals.suites import get_suite
from orchestrator.testing import ScriptedLead, Step, reply, tool_calls
from serving.cli import app
from specialists import ConfigurationError
from tests.helpers.cli import understudy

REPORT_FILES = (
    "samples.jsonl",
    "results/llm.jsonl",
    "results/router.jsonl",
    "results/cascade.jsonl",
    "results/slm.jsonl",
    "summary.json",
    "report.md",
    "accuracy_vs_cost.png",
    "latency_cdf.png",
)


def knowing_lead(data_dir: Path) -> ScriptedLead:
    """A lead that answers every GSM8K question right; with tools it first asks the specialist."""
    references = {s.prompt: s.reference for s in get_suite("gsm8k").load(DataSource(data_dir))}

    def step(body: dict[str, Any]) -> Step:
        messages = body["messages"]
        question = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        if body.get("tools") and not any(m["role"] == "tool" for m in messages):
            return tool_calls(("math_specialist", {"request": question}))
        return reply(f"The answer is {references[question]}.")

    return ScriptedLead([step], repeat_last=True)


def recorded_runs(out: Path) -> int:
    with sqlite3.connect(out / "transcripts.db") as db:
        return db.execute("SELECT count(*) FROM runs").fetchone()[0]


@pytest.mark.slow
def test_eval_run_compares_four_modes_and_a_rerun_reuses_everything(
    home_with_smollm2: Path, data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    args = ("eval", "run", "--suite", "gsm8k", "--limit", "10", "--seed", "5", "--out", str(out))
    args += ("--max-tokens", "16", "--concurrency", "8")
    with knowing_lead(data_dir) as lead:
        env = {
            "UNDERSTUDY_LEAD_BASE_URL": lead.base_url,
            "UNDERSTUDY_LEAD_MODEL": "gpt-4o-mini",
            "UNDERSTUDY_DATA_DIR": str(data_dir),
        }
        first = understudy(*args, env=env, timeout=600)
        assert first.returncode == 0, first.stderr
        requests, runs = len(lead.requests), recorded_runs(out)
        again = understudy(*args, env=env, timeout=600)
        assert again.returncode == 0, again.stderr
        assert len(lead.requests) == requests  # the lead was not asked again
    assert recorded_runs(out) == runs == 40  # nor was the SLM: every run leaves a transcript
    assert "40 items run, 0 from the cache" in first.stdout
    assert "0 items run, 40 from the cache" in again.stdout

    assert all((out / name).is_file() for name in REPORT_FILES)
    ids = [json.loads(line)["id"] for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 10
    for mode in ("llm", "router", "cascade", "slm"):
        lines = (out / "results" / f"{mode}.jsonl").read_text().splitlines()
        assert [json.loads(line)["sample_id"] for line in lines] == ids
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sample_ids"] == ids and summary["items_from_cache"] == 40
    metrics = summary["metrics"]
    assert metrics["llm"]["accuracy"] == metrics["router"]["accuracy"] == 1.0
    assert metrics["llm"]["without_lead_share"] == 0 and metrics["slm"]["without_lead_share"] == 1
    assert metrics["slm"]["lead_tokens"] == 0 and metrics["slm"]["slm_tokens"] > 0
    assert metrics["router"]["tool_calls_per_item"] == 1.0
    assert (
        0 < metrics["slm"]["cost_usd"] < metrics["llm"]["cost_usd"] < metrics["router"]["cost_usd"]
    )
    assert len(summary["cascade_curve"]["points"]) == 101
    report = (out / "report.md").read_text()
    assert "**gsm8k, 10 samples:** gpt-4o-mini alone 100 %" in report
    assert "| mode | accuracy [95 % CI] | cost | cost vs llm | latency p50 / p95 |" in report
    assert "## Cascade: accuracy and cost over the confidence threshold" in report
    assert (out / "latency_cdf.png").read_bytes()[:4] == b"\x89PNG"


def invoke(*args: str) -> Result:
    """The command in-process (the argument checks, without an interpreter start each)."""
    return CliRunner().invoke(app, ["eval", "run", *args])


def test_eval_run_needs_a_lead_for_the_lead_modes(
    isolated_env: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNDERSTUDY_DATA_DIR", str(data_dir))
    result = invoke("--suite", "gsm8k", "--limit", "2")
    assert isinstance(result.exception, ConfigurationError)
    assert "mode 'llm' needs a lead model" in str(result.exception)
    assert not (isolated_env / "evals").exists() and not (isolated_env / "models").exists()


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (["--suite", "poetry"], UnknownSuiteError, "unknown suite 'poetry'; suites: gsm8k,"),
        (["--suite", "gsm8k", "--modes", "llm,fast"], ConfigurationError, "unknown mode fast;"),
        (["--suite", "gsm8k", "--modes", "slm,slm"], ConfigurationError, "listed twice: slm"),
    ],
)
def test_eval_run_rejects_bad_arguments(
    args: list[str], error: type[Exception], message: str
) -> None:
    result = invoke(*args)
    assert isinstance(result.exception, error) and message in str(result.exception)


def test_eval_run_help_teaches() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    assert "--modes" in result.output and "resumes" in result.output
