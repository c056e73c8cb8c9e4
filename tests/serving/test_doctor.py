"""``understudy doctor`` and ``/readyz`` say whether the code sandbox works, why not, and how to
fix it; the sandbox settings reach the orchestrator's limits."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from serving.orchestration import build_orchestrator
from serving.sandbox import require_sandbox, sandbox_limits
from serving.settings import Settings
from specialists.vllm_client import VLLMBackend
from tests.helpers.cli import UNDERSTUDY, understudy
from tests.helpers.http_server import free_port, serve
from tests.helpers.registry import promoted_at
from tests.helpers.vllm import ScriptedVLLM
from tools.sandbox import SandboxLimits

NO_BWRAP = {"PATH": "/nonexistent"}
"""A process that finds no bubblewrap (the interpreter is started by its absolute path)."""


def checks(stdout: str) -> dict[str, dict[str, str]]:
    return {line["check"]: line for line in map(json.loads, stdout.splitlines())}


def test_doctor_passes_where_everything_is_there(home_with_smollm2: Path) -> None:
    result = understudy("doctor", env={"UNDERSTUDY_LEAD_MODEL": "openai/gpt-4o-mini"})
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["✓", "sandbox"],
        ["✓", "database"],
        ["✓", "lead"],
        ["✓", "slm"],
        ["✓", "lora_slots"],
    ]
    assert "bubblewrap" in lines[0] and "smollm2-135m" in lines[3]


def test_doctor_without_bubblewrap_fails_and_says_how_to_fix_it(home_with_smollm2: Path) -> None:
    env = {**NO_BWRAP, "UNDERSTUDY_LEAD_MODEL": "openai/gpt-4o-mini"}
    result = understudy("doctor", "--json", env=env)
    assert result.returncode == 1
    found = checks(result.stdout)
    assert {name: line["status"] for name, line in found.items()} == {
        "sandbox": "failed",
        "database": "ok",
        "lead": "ok",
        "slm": "ok",
        "lora_slots": "ok",
    }
    sandbox = found["sandbox"]
    assert sandbox["detail"].startswith("bubblewrap (bwrap) is not installed; the lead is not")
    assert "apt-get install bubblewrap" in sandbox["fix"]
    assert "UNDERSTUDY_SANDBOX_ALLOW_UNSANDBOXED=true" in sandbox["fix"]


def test_running_unsandboxed_is_a_loud_warning_not_a_pass(home_with_smollm2: Path) -> None:
    env = {**NO_BWRAP, "UNDERSTUDY_SANDBOX_ALLOW_UNSANDBOXED": "true"}
    sandbox = checks(understudy("doctor", "--json", env=env).stdout)["sandbox"]
    assert sandbox["status"] == "warning"
    assert sandbox["detail"].startswith("run_python runs snippets WITHOUT the sandbox")


def test_failing_checks_name_their_fix(isolated_env: Path) -> None:
    env = {"UNDERSTUDY_SLM_BACKEND": "vllm", "UNDERSTUDY_SLM_BASE_URL": "http://127.0.0.1:9/v1"}
    found = checks(understudy("doctor", "--json", env=env).stdout)
    assert found["slm"]["status"] == "failed" and "understudy slm serve" in found["slm"]["fix"]
    assert found["lead"]["status"] == "failed" and "UNDERSTUDY_LEAD_MODEL" in found["lead"]["fix"]


def test_doctor_names_an_adapter_vllm_does_not_serve(
    isolated_env: Path, tiny_lora_dir: Path, tmp_path: Path
) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}"

    served = promoted_at(database, "math", tiny_lora_dir, base_model="smollm2-135m")
    vllm = ScriptedVLLM(base="smollm2-135m")
    with serve(vllm) as (root, _seen):
        env = {
            "UNDERSTUDY_DATABASE_URL": database,
            "UNDERSTUDY_SLM_BACKEND": "vllm",
            "UNDERSTUDY_SLM_BASE_URL": f"{root}/v1",
        }
        missing = checks(understudy("doctor", "--json", env=env).stdout)["slm"]
        vllm.loaded[served] = str(tiny_lora_dir)  # a running API's sync loaded it again
        found = checks(understudy("doctor", "--json", env=env).stdout)
        present, slots = found["slm"], found["lora_slots"]
        short = {**env, "UNDERSTUDY_SLM_MAX_LORAS": "1"}
        too_few = checks(understudy("doctor", "--json", env=short).stdout)["lora_slots"]
    assert slots == {
        "check": "lora_slots",
        "status": "ok",
        "detail": "`slm serve` gives vLLM 4 LoRA slot(s) for 2 adapter(s) at once "
        "(1 active, 0 canary, 1 candidate under evaluation)",
        "fix": None,
    }
    assert too_few["status"] == "warning"
    assert too_few["detail"].startswith("UNDERSTUDY_SLM_MAX_LORAS=1 is below the 2 adapters")
    assert missing["status"] == "failed"
    assert missing["detail"] == (
        f"specialist 'math' needs adapter '{served}', which vLLM at {root}/v1 does not serve"
    )
    assert "UNDERSTUDY_DISTILL_REGISTRY_POLL_S" in missing["fix"]
    assert present["status"] == "ok" and served in present["detail"]


def test_readyz_reports_a_missing_sandbox(home_with_smollm2: Path) -> None:
    port = free_port()
    env = {**os.environ, **NO_BWRAP, "UNDERSTUDY_API_AUTH": "false"}
    server = subprocess.Popen(
        [*UNDERSTUDY, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline, "the API did not start"
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=30)
                break
            except httpx.TransportError:
                time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert response.status_code == 503
    assert response.json()["checks"]["sandbox"].startswith(
        "error: SandboxUnavailable: the code sandbox is unavailable: bubblewrap (bwrap) is not"
    )


def test_require_sandbox_passes_here_and_settings_map_to_limits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert require_sandbox(Settings()).available
    monkeypatch.setenv("UNDERSTUDY_SANDBOX_TIMEOUT_S", "3.5")
    monkeypatch.setenv("UNDERSTUDY_SANDBOX_MEMORY_MB", "256")
    monkeypatch.setenv("UNDERSTUDY_SANDBOX_ALLOW_UNSANDBOXED", "true")
    settings = Settings()
    assert sandbox_limits(settings) == SandboxLimits(
        timeout_s=3.5, memory_mb=256, allow_unsandboxed=True
    )
    backend = VLLMBackend("http://127.0.0.1:9/v1", base_model_name="smollm2-135m")  # not called
    orchestrator = build_orchestrator(settings, store=None, backend=backend)
    assert orchestrator.sandbox == sandbox_limits(settings)
