"""``understudy specialists promote|pause|resume|events|list`` as operators run them: a real
subprocess on the test's database, a real tiny model and adapter."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from database import Database
from distill.registry import RegistryStore
from serving.settings import get_settings
from specialists.adapters import adapter_sha256
from tests.distill.test_cli import adapter, failure, listed, tiny_env
from tests.helpers.cli import understudy

__all__ = ["adapter", "tiny_env"]  # fixtures used by name


async def passing_versions(adapter: Path, base_model: Path, count: int) -> None:
    """``count`` versions of math on ``adapter`` that passed the gate, as `distill evaluate`
    would leave them."""
    async with await Database.open(get_settings().database_url) as database:
        registry = RegistryStore(database)
        for _ in range(count):
            version = await registry.add_version(
                "math",
                adapter_path=str(adapter),
                adapter_sha256=adapter_sha256(adapter),
                base_model=str(base_model),
                lora_rank=8,
            )
            await registry.record_evaluation(
                version.id, metrics={}, threshold=0.6, gate_passed=True
            )


def succeeds(*args: str) -> str:
    result = understudy(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return " ".join(result.stdout.split())


def events(*args: str) -> list[dict[str, Any]]:
    return json.loads(succeeds("specialists", "events", *args, "--json"))


def math_entry() -> dict[str, Any]:
    (math,) = [entry for entry in listed() if entry["name"] == "math"]
    return math


def test_promote_starts_a_canary_by_default_and_now_overrides_it(
    tiny_env: None, adapter: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(passing_versions(adapter, tiny_model_dir, 2))
    monkeypatch.setenv("UNDERSTUDY_CANARY_SHARE", "0.2")
    said = succeeds("specialists", "promote", "math", "--version", "1")
    assert "math@1 is a canary on 20.0% of math's traffic" in said
    math = math_entry()
    assert math["status"] == "active + canary v1 20.0%" and math["active_version"] is None
    [started] = events("math")
    assert (started["kind"], started["figures"], started["actor"]) == (
        "canary_started",
        {"share": 0.2},
        "cli",
    )
    # one canary at a time
    message = failure(understudy("specialists", "promote", "math", "--canary", "0.5"))
    assert "math@1 is in canary" in message
    both = understudy("specialists", "promote", "math", "--now", "--canary", "0.1")
    assert both.returncode == 2 and "contradict" in both.stderr
    whole = understudy("specialists", "promote", "math", "--version", "2", "--canary", "1")
    assert "must be in [0, 1)" in failure(whole)

    said = succeeds("specialists", "promote", "math", "--version", "1", "--now")
    assert "math@1 is active" in said
    [promoted, _] = events("math")
    assert (promoted["kind"], promoted["figures"]["override"]) == ("promoted", True)
    assert "operator override" in promoted["reason"]
    assert math_entry()["active_version"] == 1

    monkeypatch.setenv("UNDERSTUDY_CANARY_SHARE", "0")  # 0: straight to active, no override
    assert "math@2 is active" in succeeds("specialists", "promote", "math")
    assert events("math", "--limit", "1")[0]["figures"] == {"override": False}
    versions = {v["version"]: v for v in math_entry()["versions"]}
    assert (versions[1]["status"], versions[1]["retire_reason"]) == ("retired", "superseded")


def test_pause_and_resume_a_built_in_specialist(tiny_env: None) -> None:
    said = succeeds("specialists", "pause", "email", "--reason", "complaints")
    assert "understudy specialists resume email" in said
    (email,) = [entry for entry in listed() if entry["name"] == "email"]
    assert (email["status"], email["paused"]) == ("paused (active)", True)
    assert "paused already" in failure(understudy("specialists", "pause", "email"))
    assert "unknown specialist 'nosuch'" in failure(understudy("specialists", "pause", "nosuch"))
    succeeds("specialists", "resume", "email")
    assert "is not paused" in failure(understudy("specialists", "resume", "email"))
    kinds = [(e["kind"], e["reason"]) for e in events("email")]
    assert kinds == [("resumed", "resumed"), ("paused", "complaints")]
    table = succeeds("specialists", "events")
    assert "paused" in table and "complaints" in table
