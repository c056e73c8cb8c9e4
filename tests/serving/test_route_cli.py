"""``understudy route``: the pre-router's choice from the command line, with the real MiniLM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from orchestrator.prerouter import DEFAULT_THRESHOLD, MiniLMEmbedder, PreRouter
from serving.cli import route_cmd
from serving.cli.route_cmd import route
from serving.settings import Settings

app = typer.Typer()
app.command("route")(route)
app.command("noop", hidden=True)(lambda: None)  # a second command keeps `route` a subcommand

runner = CliRunner()

PROMPTS = [
    "A shop sells pens at $4 each. How much do 7 pens cost?",
    "Write an email to my manager asking for Friday off.",
    "Write a function to remove duplicates from a list.",
]


@pytest.fixture(scope="module")
def shared_embedder() -> MiniLMEmbedder:
    """One real MiniLM for the module, so each test does not reload it."""
    return MiniLMEmbedder()


@pytest.fixture
def shared_model(shared_embedder: MiniLMEmbedder, monkeypatch: pytest.MonkeyPatch) -> None:
    """Route with the shared model; threshold and catalog still come from the settings."""

    def build(settings: Settings) -> PreRouter:
        return PreRouter(settings.catalog(), shared_embedder, threshold=settings.router.threshold)

    monkeypatch.setattr(route_cmd, "build_prerouter", build)


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def test_single_prompt_json_with_the_settings_model(monkeypatch: pytest.MonkeyPatch) -> None:
    # Not patched: the settings build the router; a raised threshold proves they are read.
    monkeypatch.setenv("UNDERSTUDY_ROUTER_THRESHOLD", "0.95")
    result = runner.invoke(app, ["route", PROMPTS[0], "--json"])
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    assert decision["specialist"] is None and decision["best"] == "math"
    assert decision["threshold"] == 0.95
    assert set(decision["scores"]) == {"math", "email", "code"}


@pytest.mark.usefixtures("shared_model")
def test_single_prompt_json_picks_math() -> None:
    result = runner.invoke(app, ["route", PROMPTS[0], "--json"])
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    assert decision["specialist"] == decision["best"] == "math"
    assert decision["threshold"] == DEFAULT_THRESHOLD
    assert decision["scores"]["math"] > max(decision["scores"]["email"], decision["scores"]["code"])


@pytest.mark.usefixtures("shared_model")
def test_human_output_names_the_choice_and_scores_every_specialist() -> None:
    result = runner.invoke(app, ["route", PROMPTS[1]])
    assert result.exit_code == 0, result.output
    assert "→ email" in result.stdout
    assert all(name in result.stdout for name in ("math", "email", "code"))
    assert f"threshold {DEFAULT_THRESHOLD:.2f}" in result.stdout


@pytest.mark.usefixtures("shared_model")
def test_human_output_says_none_with_the_best_guess(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNDERSTUDY_ROUTER_THRESHOLD", "0.99")
    result = runner.invoke(app, ["route", PROMPTS[2]])
    assert result.exit_code == 0, result.output
    assert "→ none (best: code)" in result.stdout


@pytest.mark.usefixtures("shared_model")
def test_file_gives_one_json_line_per_prompt_in_order(tmp_path: Path) -> None:
    lines = [
        json.dumps({"prompt": PROMPTS[0]}),
        "",
        *(json.dumps({"prompt": p}) for p in PROMPTS[1:]),
    ]
    result = runner.invoke(app, ["route", "--file", str(_write(tmp_path, lines)), "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["line"] for row in rows] == [1, 3, 4]  # the blank line is skipped, not renumbered
    assert [row["specialist"] for row in rows] == ["math", "email", "code"]
    assert all(set(row["scores"]) == {"math", "email", "code"} for row in rows)


@pytest.mark.usefixtures("shared_model")
def test_file_human_output_has_a_line_per_prompt(tmp_path: Path) -> None:
    path = _write(tmp_path, [json.dumps({"prompt": p}) for p in PROMPTS])
    result = runner.invoke(app, ["route", "--file", str(path)])
    assert result.exit_code == 0, result.output
    out = result.stdout.splitlines()
    assert len(out) == 3
    assert [line.split()[:2] for line in out] == [["1", "math"], ["2", "email"], ["3", "code"]]


@pytest.mark.usefixtures("shared_model")
def test_settings_catalog_overrides_reach_the_router(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sql = {
        "description": "Writes SQL queries for relational databases.",
        "system_prompt": "You write SQL.",
        "examples": ["Write a SQL query that lists all customers from Canada."],
    }
    monkeypatch.setenv("UNDERSTUDY_SPECIALISTS", json.dumps({"sql": sql}))
    result = runner.invoke(app, ["route", "Write a SQL query counting orders per day.", "--json"])
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    assert decision["specialist"] == "sql" and "sql" in decision["scores"]


@pytest.mark.usefixtures("shared_model")
@pytest.mark.parametrize(
    ("bad_line", "problem"),
    [
        ("{not json", "not valid JSON"),
        ('{"text": "hello"}', 'expected an object like {"prompt": "<text>"}'),
        ('["a", "list"]', 'expected an object like {"prompt": "<text>"}'),
        ('{"prompt": 42}', '"prompt" must be a string, got int'),
    ],
)
def test_a_bad_line_stops_the_run_naming_its_number(
    tmp_path: Path, bad_line: str, problem: str
) -> None:
    lines = [json.dumps({"prompt": PROMPTS[0]}), bad_line, json.dumps({"prompt": PROMPTS[2]})]
    path = _write(tmp_path, lines)
    result = runner.invoke(app, ["route", "--file", str(path), "--json"])
    assert result.exit_code == 1
    assert f"line 2: {problem}" in result.stderr
    # The line before is printed in full; nothing for the bad line or after it.
    assert [json.loads(line)["line"] for line in result.stdout.splitlines()] == [1]


@pytest.mark.usefixtures("shared_model")
def test_stdin_is_read_with_a_dash() -> None:
    stdin = "".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS[:2])
    result = runner.invoke(app, ["route", "--file", "-", "--json"], input=stdin)
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["specialist"] for line in result.stdout.splitlines()] == [
        "math",
        "email",
    ]


@pytest.mark.parametrize("args", [[], ["What is 2 + 2?", "--file", "prompts.jsonl"]])
def test_exactly_one_of_prompt_and_file_is_a_usage_error(args: list[str]) -> None:
    result = runner.invoke(app, ["route", *args])
    assert result.exit_code == 2
    assert "exactly one of PROMPT or --file" in result.output


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["route", "--file", str(tmp_path / "absent.jsonl")])
    assert result.exit_code == 2
    assert "cannot read" in result.output and "absent.jsonl" in result.output
