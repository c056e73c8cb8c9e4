"""``/readyz`` names a specialist whose adapter vLLM does not serve, and says when the registry's
catalog is not applied yet, until the registry sync loads the adapter: the real API (uvicorn on
127.0.0.1) on a real database holding the registry; vLLM's endpoints are played by a real HTTP
server (real vLLM restarts in tests/integration)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.api.app import create_app
from serving.settings import Settings
from tests.helpers.http_server import serve, serve_app
from tests.helpers.registry import promoted_at
from tests.helpers.vllm import ScriptedVLLM

Body = dict[str, Any]


@pytest.fixture
def promoted_math(database_url: str, tiny_lora_dir: Path) -> str:
    """Math's v1 active in the registry at ``database_url``; its served name."""

    return promoted_at(database_url, "math", tiny_lora_dir, base_model="smollm2-135m")


def readyz(url: str, until: Callable[[Body], bool] = lambda _body: True) -> httpx.Response:
    """``/readyz``, asked again (for up to a minute) until ``until`` holds for its body."""
    deadline = time.monotonic() + 60
    while True:
        response = httpx.get(f"{url}/readyz", timeout=30)
        if until(response.json()):
            return response
        assert time.monotonic() < deadline, response.json()
        time.sleep(0.05)


def adapters_ok(body: Body) -> bool:
    return bool(body["checks"]["adapters"] == "ok")


def test_readyz_names_a_missing_adapter_until_the_sync_loads_it_again(
    home_with_smollm2: Path,
    database_url: str,
    promoted_math: str,
    tiny_lora_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vllm = ScriptedVLLM(base="smollm2-135m", refuse=frozenset({promoted_math}))
    with serve(vllm) as (root, _seen):
        for key, value in {
            "UNDERSTUDY_DATABASE_URL": database_url,
            "UNDERSTUDY_LEAD_MODEL": "gpt-4o-mini",
            "UNDERSTUDY_SLM_BACKEND": "vllm",
            "UNDERSTUDY_SLM_BASE_URL": f"{root}/v1",
            "UNDERSTUDY_SLM_MAX_RETRIES": "0",
            "UNDERSTUDY_DISTILL_REGISTRY_POLL_S": "0.05",
        }.items():
            monkeypatch.setenv(key, value)
        with serve_app(create_app(Settings())) as url:
            not_applied = readyz(url)  # vLLM refuses the adapter: the first sync failed
            vllm.refuse = frozenset()
            ready = readyz(url, until=adapters_ok)

            vllm.refuse = frozenset({promoted_math})  # it restarts, and refuses for now
            vllm.restart()
            missing = readyz(url, until=lambda body: not adapters_ok(body))
            vllm.refuse = frozenset()
            ready_again = readyz(url, until=adapters_ok)
    assert not_applied.status_code == 503
    detail = not_applied.json()["checks"]["adapters"]
    assert detail.startswith("error: RegistryNotApplied: the registry's catalog is not applied")
    assert promoted_math in detail
    assert missing.status_code == 503
    assert missing.json()["checks"]["adapters"] == (
        f"error: AdaptersNotServed: specialist 'math' needs adapter '{promoted_math}', "
        f"which vLLM at {root}/v1 does not serve"
    )
    assert ready.status_code == ready_again.status_code == 200
    assert vllm.loaded == {promoted_math: str(tiny_lora_dir.resolve())}
