"""``/v1/admin``, the console's actions as an API, through a real server: an admin key does each
one, any other key is refused every one (403), and what is not there is a 404."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from distill.jobs import DistillJobStore
from distill.progress import TrainingProgress
from distill.registry import RegistryStore
from orchestrator.testing import reply
from serving.keys import KeyStore
from tests.api.test_chat_api import ask
from tests.helpers.api_server import Api, serving
from tests.helpers.stores import open_store

ACTIONS = [
    ("GET", "/v1/admin/overview", None),
    ("GET", "/v1/admin/runs", None),
    ("GET", "/v1/admin/runs/nosuchrun", None),
    ("GET", "/v1/admin/specialists", None),
    ("POST", "/v1/admin/specialists/math/promote", {}),
    ("POST", "/v1/admin/specialists/math/rollback", None),
    ("POST", "/v1/admin/specialists/math/pause", None),
    ("POST", "/v1/admin/specialists/math/resume", None),
    ("GET", "/v1/admin/keys", None),
    ("POST", "/v1/admin/keys", {"name": "x"}),
    ("POST", "/v1/admin/keys/nosuchkey/revoke", None),
    ("GET", "/v1/admin/proposals", None),
    ("POST", "/v1/admin/proposals/1/accept", None),
    ("POST", "/v1/admin/proposals/1/dismiss", None),
    ("GET", "/v1/admin/distill/jobs", None),
]


@pytest.fixture
def api(
    home_with_smollm2: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Api]:
    with serving(database_url, monkeypatch) as served:
        yield served


def _admin_key(url: str) -> str:
    async def create() -> str:
        keys = await open_store(KeyStore, url)
        _, plaintext = await keys.create("operator", admin=True)
        await keys.database.close()
        return plaintext

    return asyncio.run(create())


def _paused(url: str) -> tuple[set[str], list[str]]:
    """The registry's paused specialists, and its events' kinds (newest first) with reasons
    checked: what `understudy specialists events` reads."""

    async def read() -> tuple[set[str], list[str]]:
        registry = await open_store(RegistryStore, url)
        paused = set((await registry.snapshot()).paused)
        events = await registry.events("math")
        await registry.database.close()
        assert all(e.actor == "api" for e in events)
        assert [e.reason for e in events if e.kind.value == "paused"] == ["drifting"]
        return paused, [e.kind.value for e in events]

    return asyncio.run(read())


def _usage_after_a_request(api: Api, admin: httpx.Client, key: str) -> int:
    """Ask once with ``key``; its requests this minute as ``GET /v1/admin/keys`` lists them
    (asked again should the minute turn in between), its tokens today checked on the way."""
    while True:
        minute = time.gmtime().tm_min
        api.lead.enqueue(reply("Paris."))
        asked = admin.post(
            "/v1/chat/completions",
            json={"model": "understudy-llm", "messages": [{"role": "user", "content": "France?"}]},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert asked.status_code == 200, asked.text
        listed = admin.get("/v1/admin/keys").json()["data"]
        (usage,) = [k["usage"] for k in listed if k["name"] == "metered"]
        assert usage["tokens_today"] == asked.json()["usage"]["total_tokens"] > 0
        if time.gmtime().tm_min == minute:
            return int(usage["requests_this_minute"])
        time.sleep(0.5)


def _job_in_training(url: str) -> None:
    async def record() -> None:
        jobs = await open_store(DistillJobStore, url)
        job = await jobs.enqueue("math")
        await jobs.claim("worker-a", lease_s=600, max_attempts=3)
        at = datetime.now(UTC)
        losses = ((20, 1.5), (40, 1.0))
        reading = TrainingProgress(40, 100, 0, at - timedelta(seconds=40), at, losses)
        await jobs.record_training(job.id, "worker-a", reading)
        await jobs.database.close()

    asyncio.run(record())


def test_every_admin_action_needs_an_admin_key(api: Api) -> None:
    with httpx.Client(base_url=api.url) as http:
        for method, path, body in ACTIONS:
            anonymous = http.request(method, path, json=body)
            refused = http.request(
                method, path, json=body, headers={"Authorization": f"Bearer {api.key}"}
            )
            assert anonymous.status_code == 401, path
            assert refused.status_code == 403, path
            assert refused.json()["error"]["code"] == "permission_denied"


def test_an_admin_key_does_each_action(api: Api) -> None:
    admin = _admin_key(api.settings.database_url)
    api.lead.enqueue(reply("Paris."))
    run_id = ask(api, "understudy-llm", "Capital of France?").model_extra["understudy"]["run_id"]
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {admin}"}) as http:

        def call(method: str, path: str, expect: int, body: object = None) -> dict:
            response = http.request(method, path, json=body)
            assert response.status_code == expect, (path, response.text)
            return response.json()

        for window in ("hour", "day", "week"):
            overview = call("GET", f"/v1/admin/overview?window={window}", 200)
            assert (overview["window"], overview["runs"]) == (window, 1)
            assert overview["by_category"] == {"lead": 1}
        assert call("GET", "/v1/admin/overview?window=year", 400)["error"]
        found = call("GET", "/v1/admin/runs?text=France", 200)["data"]
        assert [r["run_id"] for r in found] == [run_id]
        assert call("GET", f"/v1/admin/runs/{run_id}", 200)["answer"] == "Paris."
        assert call("GET", "/v1/admin/runs/nosuchrun", 404)["error"]["code"] == "run_not_found"
        assert call("GET", "/v1/admin/specialists", 200)["data"] == []
        # Nothing to promote or roll back: the registry's refusal, as the CLI's.
        refused = call("POST", "/v1/admin/specialists/nosuch/promote", 409, {})
        assert refused["error"]["code"] == "promotion_refused"
        call("POST", "/v1/admin/specialists/nosuch/rollback", 409)
        paused = call("POST", "/v1/admin/specialists/math/pause", 200, {"reason": "drifting"})
        assert paused == {"object": "specialist.pause", "name": "math", "paused": True}
        assert _paused(api.settings.database_url) == ({"math"}, ["paused"])
        again = call("POST", "/v1/admin/specialists/math/pause", 409)
        assert again["error"]["code"] == "pause_conflict"
        assert call("POST", "/v1/admin/specialists/math/resume", 200)["paused"] is False
        assert _paused(api.settings.database_url) == (set(), ["resumed", "paused"])
        assert call("POST", "/v1/admin/specialists/math/resume", 409)["error"]["code"] == (
            "pause_conflict"
        )
        assert call("POST", "/v1/admin/specialists/nosuch/pause", 404)["error"]["code"] == (
            "not_found"
        )
        created = call("POST", "/v1/admin/keys", 200, {"name": "reporting"})
        assert created["key"].startswith("us-")
        listed = call("GET", "/v1/admin/keys", 200)["data"]
        assert "reporting" in [k["name"] for k in listed]
        assert all("key" not in k for k in listed)  # the secret is shown once, at creation
        assert call("POST", f"/v1/admin/keys/{created['id']}/revoke", 200)["revoked_at"]
        call("POST", "/v1/admin/keys/nosuchkey/revoke", 404)
        (reporting,) = [k for k in listed if k["name"] == "reporting"]  # no limit: not counted
        assert reporting["usage"] == {"requests_this_minute": None, "tokens_today": None}
        limited = call(
            "POST",
            "/v1/admin/keys",
            200,
            {"name": "metered", "requests_per_minute": 9, "tokens_per_day": 10_000},
        )
        assert _usage_after_a_request(api, http, limited["key"]) == 1
        assert call("GET", "/v1/admin/proposals", 200)["data"] == []
        call("POST", "/v1/admin/proposals/1/accept", 404)
        call("POST", "/v1/admin/proposals/1/dismiss", 404)
        assert call("GET", "/v1/admin/distill/jobs", 200)["data"] == []
        _job_in_training(api.settings.database_url)
        (job,) = call("GET", "/v1/admin/distill/jobs", 200)["data"]
        training = job["training"]
        assert (training["step"], training["total_steps"], training["losses"]) == (
            40,
            100,
            [[20, 1.5], [40, 1.0]],
        )
        # 40 steps in 40 s: the 60 left end a minute after the reading.
        assert datetime.fromisoformat(training["eta"]) - datetime.fromisoformat(
            training["updated_at"]
        ) == timedelta(seconds=60)


def test_admin_inputs_out_of_bounds_are_refused_by_name(api: Api) -> None:
    """What the database cannot hold or would read whole is a 4xx that says so, never a 500."""
    admin = _admin_key(api.settings.database_url)
    with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {admin}"}) as http:
        wide = http.get(
            "/v1/admin/runs",
            params={"text": "x", "since": "2026-01-01T00:00:00", "until": "2026-02-01T00:00:00"},
        )
        assert wide.status_code == 400, wide.text
        assert wide.json()["error"]["code"] == "invalid_filter"
        assert "at most 1 day" in wide.json()["error"]["message"]
        for path, body in [
            ("/v1/admin/runs?offset=1000000000000000000000", None),
            ("/v1/admin/proposals/99999999999999999999/accept", None),
            ("/v1/admin/runs/" + "r" * 65, None),
            ("/v1/admin/keys", {"name": "   "}),
            ("/v1/admin/keys", {"name": "x", "requests_per_minute": 2**31}),
            ("/v1/admin/proposals?status=nonsense", None),
            ("/v1/admin/specialists/math/pause", {"reason": ""}),
        ]:
            response = http.request(
                "POST" if path.endswith(("accept", "keys", "pause")) else "GET", path, json=body
            )
            assert response.status_code == 400, (path, response.text)
