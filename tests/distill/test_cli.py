"""``understudy specialists`` and ``understudy distill evaluate`` as users run them: a real
subprocess, a real tiny model and adapter; every bad input is one clear line and changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from database import Database
from distill.registry import RegistryStore, SpecialistVersion
from orchestrator.audits import AuditCandidate, AuditStore, AuditVerdict, wilson_interval
from serving.settings import get_settings
from tests.helpers.cli import understudy

QUESTIONS = [f"What is {a} plus {b}?" for a, b in [(3, 4), (10, 5), (7, 8), (20, 22), (6, 6)]]


def failure(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a failed command prints."""
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return " ".join(result.stderr.split())  # rich wraps long lines


def listed() -> list[dict[str, Any]]:
    result = understudy("specialists", "list", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def write_dataset(directory: Path, *, test_items: int = 3) -> Path:
    """A math dataset whose held-out answers are the lead's sums."""
    directory.mkdir(parents=True)
    for split, questions in (("val", QUESTIONS[:2]), ("test", QUESTIONS[2 : 2 + test_items])):
        lines = []
        for question in questions:
            a, b = (int(word) for word in question.rstrip("?").split() if word.isdigit())
            messages = [
                {"role": "system", "content": "You solve math problems."},
                {"role": "user", "content": question},
                {"role": "assistant", "content": f"Answer: {a + b}"},
            ]
            lines.append(json.dumps({"messages": messages, "run_id": question}) + "\n")
        (directory / f"{split}.jsonl").write_text("".join(lines))
    return directory


@pytest.fixture
def tiny_env(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNDERSTUDY_SLM_BASE_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("UNDERSTUDY_SPECIALISTS", '{"math": {"generation": {"max_tokens": 8}}}')


@pytest.fixture
def adapter(tiny_lora_dir: Path, isolated_env: Path, tiny_model_dir: Path) -> Path:
    """The tiny model's LoRA where ``distill train`` would have put it."""
    copy = Path(shutil.copytree(tiny_lora_dir, isolated_env / "adapters" / "math" / "run1"))
    training = {"base_model": str(tiny_model_dir), "finished_at": "2026-01-01T00:00:00"}
    (copy / "training.json").write_text(json.dumps(training))
    return copy


def test_the_catalog_lists_built_ins_with_no_versions_yet() -> None:
    specialists = {entry["name"]: entry for entry in listed()}
    assert set(specialists) == {"math", "email", "code"}
    assert all(e["source"] == "built-in" and e["versions"] == [] for e in specialists.values())
    assert all(e["status"] == "active" for e in specialists.values())
    assert all(e["live"]["audits"] == 0 for e in specialists.values())
    assert specialists["math"]["live"]["precision"] is None
    table = understudy("specialists", "list")
    assert table.returncode == 0 and "base + prompt" in table.stdout


def test_the_list_shows_live_precision_with_its_interval_from_settled_audits() -> None:
    asyncio.run(settle_math_audits(agreeing=8, disagreeing=2))
    (math,) = [entry for entry in listed() if entry["name"] == "math"]
    live = math["live"]
    assert (live["audits"], live["agreements"], live["precision"]) == (10, 8, 0.8)
    expected = wilson_interval(8, 10)
    assert (live["interval"]["low"], live["interval"]["high"]) == (expected.low, expected.high)
    table = understudy("specialists", "list")
    assert table.returncode == 0
    assert "80.0% [49.0%, 94.3%]" in " ".join(table.stdout.split())
    audits = json.loads(understudy("specialists", "audits", "math", "--json").stdout)
    assert len(audits) == 10 and sum(audit["agreed"] for audit in audits) == 8
    assert {audit["status"] for audit in audits} == {"done"}
    assert json.loads(understudy("specialists", "audits", "email", "--json").stdout) == []


async def settle_math_audits(*, agreeing: int, disagreeing: int) -> None:
    """Audits of the built-in math specialist, judged as a worker's drain would settle them."""
    async with await Database.open(get_settings().database_url) as database:
        audits = AuditStore(database)
        for n in range(agreeing + disagreeing):
            messages = [{"role": "user", "content": f"What is {n} + 1?"}]
            candidate = AuditCandidate(
                f"run-{n}", "math", "base", "numeric_answer", messages, f"{n + 1}", "slm"
            )
            await audits.enqueue(candidate)
            claimed = await audits.claim("w1", lease_s=60)
            assert claimed is not None
            verdict = AuditVerdict(f"{n + 1}", n < agreeing, float(n < agreeing), {})
            assert await audits.settle(claimed, verdict, 0.001)


def test_evaluate_registers_a_candidate_and_promotion_obeys_its_gate(
    tiny_env: None, adapter: Path, tmp_path: Path
) -> None:
    dataset = write_dataset(tmp_path / "dataset")
    evaluated = understudy("distill", "evaluate", "-s", "math", "--dataset", str(dataset), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    version = json.loads(evaluated.stdout)
    assert version["adapter_path"] == str(adapter) and version["status"] == "candidate"
    metrics = version["metrics"]
    assert metrics["scorer"] == "numeric_match" and metrics["test"]["items"] == 3
    # A random adapter on a random model cannot sum: the gate fails, and says why.
    assert version["gate_passed"] is False and metrics["gate"]["reasons"]
    message = failure(understudy("specialists", "promote", "math"))
    assert "math@1 failed the evaluation gate: " in message
    (math,) = [entry for entry in listed() if entry["name"] == "math"]
    assert math["active_version"] is None and len(math["versions"]) == 1

    again = understudy("distill", "evaluate", "-s", "math", "--dataset", str(dataset), "--json")
    assert json.loads(again.stdout)["id"] == version["id"]  # the same adapter: the same version
    assert "no active version to roll back" in failure(
        understudy("specialists", "rollback", "math")
    )


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("rank", "has LoRA rank 8, above the SLM server's maximum of 1"),
        ("base", "was trained on base 'another-model', but the SLM server runs"),
        ("empty test split", "has 2 validation and 0 test examples"),
        ("unknown specialist", "unknown specialist 'nobody'"),
    ],
)
def test_bad_input_is_one_clear_line_and_registers_nothing(
    tiny_env: None, adapter: Path, tmp_path: Path, problem: str, message: str
) -> None:
    dataset = write_dataset(
        tmp_path / "dataset", test_items=0 if problem.startswith("empty") else 3
    )
    env, name = {}, "math"
    if problem == "rank":
        env["UNDERSTUDY_SLM_MAX_LORA_RANK"] = "1"
    elif problem == "base":
        (adapter / "training.json").write_text(json.dumps({"base_model": "another-model"}))
    elif problem == "unknown specialist":
        name = "nobody"
    args = ("distill", "evaluate", "-s", name, "--adapter", str(adapter), "--dataset", str(dataset))
    assert message in failure(understudy(*args, env=env))
    assert asyncio.run(registered_versions()) == []


async def registered_versions() -> list[SpecialistVersion]:
    async with await Database.open(get_settings().database_url) as registry_database:
        registry = RegistryStore(registry_database)
        return await registry.list_versions()


def test_jobs_can_be_started_listed_and_cancelled() -> None:
    assert "unknown specialist 'nobody'" in failure(
        understudy("distill", "start", "--specialist", "nobody")
    )
    assert understudy("distill", "start", "--specialist", "math").returncode == 0
    assert "queued or running already" in failure(
        understudy("distill", "start", "--specialist", "math")
    )
    (job,) = json.loads(understudy("distill", "jobs", "--json").stdout)
    assert (job["specialist"], job["status"], job["trigger"]) == ("math", "queued", "manual")
    cancelled = understudy("distill", "jobs", "--cancel", job["id"], "--json")
    assert json.loads(cancelled.stdout)[0]["status"] == "cancelled"
