"""The operator console in a real Chromium (Debian's, driven by Playwright), against the real
API on 127.0.0.1 with a scripted lead; every page is screenshotted under ``$UNDERSTUDY_SCREENSHOTS``
(default ``tests/artifacts/console``) for a person to look at."""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from distill.registry import RegistryStore
from orchestrator.testing import reply
from serving.keys import KeyStore
from tests.api.test_chat_api import ask
from tests.helpers.api_server import Api, serving
from tests.helpers.registry import promoted
from tests.helpers.stores import open_store

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(os.environ.get("UNDERSTUDY_SCREENSHOTS", "tests/artifacts/console")).resolve()

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="apt-get install chromium")


@pytest.fixture
def smollm2_lora(smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from tests.helpers.models import build_random_lora

    return [
        build_random_lora(smollm2_dir, tmp_path_factory.mktemp(f"lora{seed}"), seed=seed)
        for seed in (1, 2)
    ]


@pytest.fixture
def api(
    home_with_smollm2: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Api]:
    # Promotions go straight to active here, so the page can roll one back; a canary's
    # promotion is the registry's (tests/distill/test_registry_lifecycle.py).
    monkeypatch.setenv("UNDERSTUDY_CANARY_SHARE", "0")
    with serving(database_url, monkeypatch) as served:
        yield served


def _admin_key_and_versions(url: str, adapters: list[Path]) -> str:
    async def prepare() -> str:
        keys = await open_store(KeyStore, url)
        _, admin = await keys.create("operator", admin=True)
        registry = RegistryStore(keys.database)
        await promoted(registry, "math", adapters[0], base_model="smollm2-135m")
        second = await registry.add_version(
            "math",
            adapter_path=str(adapters[1]),
            adapter_sha256=__import__("specialists.adapters").adapters.adapter_sha256(adapters[1]),
            base_model="smollm2-135m",
            lora_rank=8,
        )
        await registry.record_evaluation(
            second.id, metrics={"accuracy": 0.9}, threshold=0.5, gate_passed=True
        )
        await keys.database.close()
        return admin

    return asyncio.run(prepare())


def test_an_operator_steers_the_service_from_the_console(
    api: Api, smollm2_lora: list[Path]
) -> None:
    admin = _admin_key_and_versions(api.settings.database_url, smollm2_lora)
    api.lead.enqueue(reply("Paris."), reply("Rome."))
    first = ask(api, "understudy-llm", "Capital of France?")
    ask(api, "understudy-llm", "Capital of Italy?")
    run_id = first.model_extra["understudy"]["run_id"]
    client = api.client()
    lines = "".join(
        json.dumps(
            {
                "custom_id": f"q{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": "understudy-llm",
                    "messages": [{"role": "user", "content": "hi"}],
                },
            }
        )
        + "\n"
        for i in range(200)
    )
    uploaded = client.files.create(file=("in.jsonl", io.BytesIO(lines.encode())), purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    print(f"console screenshots: {SHOTS}")

    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM))
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("dialog", lambda dialog: dialog.accept())

        def shot(name: str) -> None:
            page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

        # Not signed in: every page is the login form; a non-admin key is refused.
        page.goto(f"{api.url}/console/runs")
        assert page.url.endswith("/console/login")
        page.get_by_label("Admin API key").fill(api.key)
        page.keyboard.press("Enter")
        assert "not an admin key" in page.get_by_role("alert").inner_text()
        shot("login-refused")
        page.goto(f"{api.url}/console/")
        assert page.url.endswith("/console/login")

        page.get_by_label("Admin API key").fill(admin)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/console/")
        assert int(page.get_by_test_id("runs").inner_text()) >= 2  # the batch adds its own
        assert "lead" in page.get_by_role("table").inner_text()
        shot("overview")

        page.get_by_role("link", name="Runs").click()
        page.get_by_label("Text").fill("France")
        page.get_by_role("button", name="Search").click()
        page.get_by_role("link", name=run_id[:12]).click()
        assert page.get_by_test_id("route").inner_text() == "lead"
        assert "Capital of France?" in page.content()
        page.get_by_label("Good (+1)").check()
        page.get_by_label("Comment").fill("right")
        page.get_by_role("button", name="Send feedback").click()
        assert "+1.0 — right" in page.locator(".feedback").inner_text()
        shot("run-trace")

        page.get_by_role("link", name="Specialists").click()
        page.get_by_role("button", name="Promote math@2").click()
        page.wait_for_load_state()
        assert "active" in page.locator('tr[data-version="math@2"]').inner_text()
        page.get_by_role("button", name="Roll back math@2").click()
        page.wait_for_load_state()
        assert "retired" in page.locator('tr[data-version="math@2"]').inner_text()
        assert "active" in page.locator('tr[data-version="math@1"]').inner_text()
        shot("specialists")

        page.get_by_role("link", name="Batches").click()
        page.get_by_role("button", name=f"Cancel batch {batch.id}").click()
        page.wait_for_load_state()
        assert "cancel" in page.locator(f'tr[data-batch="{batch.id}"]').inner_text()
        shot("batches")

        page.get_by_role("link", name="Keys").click()
        page.get_by_label("Name").fill("reporting")
        page.get_by_role("button", name="Create key").click()
        secret = page.get_by_label("New key").input_value()
        assert secret.startswith("us-")
        shot("keys")
        page.reload()
        assert secret not in page.content()

        page.get_by_role("link", name="Loop").click()
        shot("loop")

        page.get_by_role("button", name="Log out").click()
        page.goto(f"{api.url}/console/keys")
        assert page.url.endswith("/console/login")
        browser.close()
