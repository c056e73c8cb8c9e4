"""The operator console in a real Chromium (Debian's, driven by Playwright), against the real
API on 127.0.0.1 with a scripted lead; every page is screenshotted under ``$UNDERSTUDY_SCREENSHOTS``
(default ``tests/artifacts/console``) for a person to look at."""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from distill.jobs import DistillJobStore
from distill.progress import TrainingProgress
from distill.registry import RegistryStore
from orchestrator.audits import AuditStore, wilson_interval
from orchestrator.testing import reply
from serving.keys import KeyStore
from tests.api.test_chat_api import ask
from tests.distill.test_steward import audited
from tests.helpers.api_server import Api, serving
from tests.helpers.registry import promoted
from tests.helpers.stores import open_store

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(os.environ.get("UNDERSTUDY_SCREENSHOTS", "tests/artifacts/console")).resolve()

T = TypeVar("T")
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


UNNAMED_OR_UNREACHABLE_CONTROLS = """() => Array.from(document.querySelectorAll(
    'a[href], button, input:not([type=hidden]), select, textarea'))
  .filter(e => e.tabIndex < 0 || !(e.getAttribute('aria-label') || e.getAttribute('title')
    || (e.labels && e.labels.length && e.labels[0].innerText) || e.innerText
    || e.getAttribute('aria-labelledby') || '').trim())
  .map(e => e.outerHTML.slice(0, 160))"""
"""Controls with no accessible name, or taken out of the Tab order."""


def _in_a_thread(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` to its end on an event loop of its own (Playwright's holds this thread)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


async def _training(url: str, job_id: str, step: int) -> None:
    """A worker's progress reading of ``job_id`` now: ``step`` of 100, one step a second."""
    jobs = await open_store(DistillJobStore, url)
    losses = tuple((s, 2.0 / (1 + s / 10)) for s in range(1, step + 1))
    now = datetime.now(UTC)
    began = now - timedelta(seconds=step)
    await jobs.record_training(
        job_id, "worker-a", TrainingProgress(step, 100, 0, began, now, losses)
    )
    await jobs.database.close()


async def _paused(url: str) -> frozenset[str]:
    registry = await open_store(RegistryStore, url)
    paused = (await registry.snapshot()).paused
    await registry.database.close()
    return paused


def _admin_key_and_versions(url: str, adapters: list[Path]) -> tuple[str, str, str]:
    """An admin key, a metered key, two versions of math (the first active), and a job in
    training (claimed by ``worker-a``)."""

    async def prepare() -> tuple[str, str, str]:
        keys = await open_store(KeyStore, url)
        _, admin = await keys.create("operator", admin=True)
        _, metered = await keys.create("metered", requests_per_minute=50, tokens_per_day=100_000)
        jobs = DistillJobStore(keys.database)
        job = await jobs.enqueue("math")
        await jobs.claim("worker-a", lease_s=3600, max_attempts=3)
        registry = RegistryStore(keys.database)
        first = await promoted(registry, "math", adapters[0], base_model="smollm2-135m")
        await audited(AuditStore(keys.database), first, [(0.9, True)] * 3 + [(0.9, False)])
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
        await _training(url, job.id, 40)
        return admin, metered, job.id

    return asyncio.run(prepare())


def test_an_operator_steers_the_service_from_the_console(
    api: Api, smollm2_lora: list[Path]
) -> None:
    url = api.settings.database_url
    admin, metered, job_id = _admin_key_and_versions(url, smollm2_lora)
    api.lead.enqueue(reply("Paris."), reply("Rome."), reply("Bern."))
    first = ask(api, "understudy-llm", "Capital of France?")
    ask(api, "understudy-llm", "Capital of Italy?")
    tokens = (
        api.client(metered)
        .chat.completions.create(
            model="understudy-llm",
            messages=[{"role": "user", "content": "Capital of Switzerland?"}],
        )
        .usage
    )
    assert tokens is not None
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

        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))

        def shot(name: str) -> None:
            """Screenshot the page, and check what every page must be: each control named for
            assistive technology and reachable by Tab, nothing fetched from another host."""
            page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
            assert page.evaluate(UNNAMED_OR_UNREACHABLE_CONTROLS) == [], name
            assert [u for u in requested if not u.startswith(api.url)] == [], name
            page.locator("body").focus()
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.tagName") in ("A", "INPUT", "BUTTON"), name

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
        second = page.locator('tr[data-version="math@2"]')
        page.get_by_label("Canary share for math@2").fill("0.25")
        page.get_by_role("button", name="Promote math@2").click()
        page.wait_for_load_state()
        assert "canary" in second.inner_text()
        assert second.get_by_test_id("share").inner_text() == "25.0% of traffic"
        assert "no audit yet" in second.inner_text()
        assert "Return on investment: net $" in page.get_by_test_id("roi").first.inner_text()
        assert (
            "canary_started math@2 by console" in page.get_by_test_id("events").first.inner_text()
        )
        shot("specialists-canary")
        live = wilson_interval(3, 4)
        audits_of_first = page.locator('tr[data-version="math@1"]').inner_text()
        assert "\t4\t" in audits_of_first  # its audit count
        assert f"75.0% [{live.low * 100:.1f}, {live.high * 100:.1f}]" in audits_of_first
        assert "audits $0.0040 (4)" in page.get_by_test_id("roi").last.inner_text()
        assert page.get_by_label("Active now for math@2 (skip the canary)").is_checked()
        page.get_by_role("button", name="Promote math@2").click()
        page.wait_for_load_state()
        assert "active" in second.inner_text()
        page.get_by_role("button", name="Roll back math@2").click()
        page.wait_for_load_state()
        assert "retired" in page.locator('tr[data-version="math@2"]').inner_text()
        assert "active" in page.locator('tr[data-version="math@1"]').inner_text()
        page.get_by_role("button", name="Pause math").click()  # the confirmation is accepted
        page.wait_for_load_state()
        assert _in_a_thread(_paused(url)) == {"math"}
        math = page.locator('section[data-specialist="math"]')
        assert "paused" in math.get_by_role("heading").inner_text()
        shot("specialists-paused")
        page.get_by_role("button", name="Resume math").click()
        page.wait_for_load_state()
        assert _in_a_thread(_paused(url)) == frozenset()
        assert "resumed by console" in math.get_by_test_id("events").inner_text()
        assert page.get_by_role("button", name="Pause math").is_visible()
        shot("specialists")

        page.get_by_role("link", name="Batches").click()
        row = page.locator(f'tr[data-batch="{batch.id}"]')
        eta = row.get_by_test_id("eta").inner_text()
        if "in_progress" in row.inner_text():  # else it finished, or is still validating
            assert eta.startswith("in ") or eta == "after the first items finish", eta
        else:
            assert eta == "–"
        shot("batches-running")
        page.get_by_role("button", name=f"Cancel batch {batch.id}").click()
        page.wait_for_load_state()
        assert "cancel" in page.locator(f'tr[data-batch="{batch.id}"]').inner_text()
        shot("batches")

        page.get_by_role("link", name="Keys").click()
        usage = page.locator('td[data-usage="metered"]').inner_text()
        assert f"{tokens.total_tokens} / 100000 tokens today" in usage
        assert "/ 50 requests this minute" in usage
        assert "not counted: no limit" in page.locator('td[data-usage="operator"]').inner_text()
        page.get_by_label("Name").fill("reporting")
        page.get_by_role("button", name="Create key").click()
        secret = page.get_by_label("New key").input_value()
        assert secret.startswith("us-")
        shot("keys")
        page.reload()
        assert secret not in page.content()

        page.get_by_role("link", name="Loop").click()
        job = page.locator(f'tr[data-job="{job_id}"]')
        assert job.get_by_test_id("step").inner_text().strip() == "40/100"
        assert job.get_by_test_id("eta").inner_text().startswith("in 1 min")  # 60 s left
        assert job.locator("svg.loss polyline").get_attribute("points")
        assert (
            job.get_by_role("img").get_attribute("aria-label")
            == "Loss curve: 1.818 at step 1 to 0.400 at step 40"
        )
        shot("loop")
        _in_a_thread(_training(url, job_id, 70))  # the worker trains on: the page follows
        playwright_api.expect(job.get_by_test_id("step")).to_have_text("70/100", timeout=15_000)
        assert job.get_by_test_id("eta").inner_text().startswith("in under a minute")

        page.get_by_role("button", name="Log out").click()
        page.goto(f"{api.url}/console/keys")
        assert page.url.endswith("/console/login")
        browser.close()
