"""API keys: the store (both backends, several "workers"), the FastAPI dependency behind a real
uvicorn server, OpenAI-shaped errors, and the ``understudy keys`` commands."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import typer
import uvicorn
from fastapi import FastAPI, Request
from pydantic import BaseModel
from sqlalchemy import text
from typer.testing import CliRunner

from database import Database
from database.engine import create_engine
from serving.api.auth import ApiKeyDep, record_token_usage
from serving.api.errors import install_error_handlers
from serving.cli import keys_cmd
from serving.keys import ApiKey, KeyNotFound, KeyStore, KeyUsage
from serving.protocol import describe_validation_errors
from serving.settings import ApiSettings, Settings, get_settings
from tests.helpers.http_server import free_port

NOON = datetime(2025, 3, 1, 12, 0, 15, tzinfo=UTC)


@pytest.fixture
async def keys(database_url: str) -> AsyncIterator[KeyStore]:
    async with await Database.open(database_url) as store_database:
        store = KeyStore(store_database)
        yield store


async def _rows(url: str, sql: str) -> list[Any]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return list((await connection.execute(text(sql))).all())
    finally:
        await engine.dispose()


# --- the store ------------------------------------------------------------------------------


async def test_create_authenticate_revoke(keys: KeyStore) -> None:
    key, plaintext = await keys.create("ci", requests_per_minute=5, tokens_per_day=100)
    assert plaintext.startswith("us-") and len(plaintext) >= 46
    assert key.prefix == plaintext[:12] and key.name == "ci" and not key.revoked
    assert (key.requests_per_minute, key.tokens_per_day) == (5, 100)
    assert await keys.authenticate(plaintext) == key
    for wrong in (plaintext[:-1], plaintext + "x", "sk-" + plaintext[3:], "", "us-" + "a" * 300):
        assert await keys.authenticate(wrong) is None
    assert await keys.list() == [key]

    revoked = await keys.revoke(key.prefix)
    assert revoked.id == key.id and revoked.revoked_at is not None
    assert await keys.authenticate(plaintext) is None
    assert await keys.list() == []
    assert await keys.list(include_revoked=True) == [revoked]
    assert await keys.revoke(key.id) == revoked  # revoking twice changes nothing


async def test_only_the_hash_of_a_key_is_stored(keys: KeyStore, database_url: str) -> None:
    _, plaintext = await keys.create("ci")
    [row] = await _rows(database_url, "SELECT * FROM api_keys")
    assert row.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert not any(plaintext in str(value) for value in row)


async def test_revoke_needs_an_id_or_an_unambiguous_prefix(
    keys: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = iter(["abcdef1" + "x" * 36, "abcdef2" + "y" * 36])
    monkeypatch.setattr("serving.keys.secrets.token_urlsafe", lambda _: next(tokens))
    first, _ = await keys.create("one")
    second, _ = await keys.create("two")

    with pytest.raises(KeyNotFound, match="matches 2 keys") as caught:
        await keys.revoke("us-abcdef")
    assert caught.value.matches == [first.prefix, second.prefix]
    with pytest.raises(KeyNotFound, match="at least"):
        await keys.revoke("us-")
    with pytest.raises(KeyNotFound, match="no key"):
        await keys.revoke("us-zzzzzz")
    assert (await keys.revoke("us-abcdef2")).id == second.id
    assert (await keys.revoke(first.id)).id == first.id
    assert await keys.list() == []


async def test_bad_arguments_are_value_errors(keys: KeyStore) -> None:
    for name, limits in [
        ("", {}),
        ("x" * 101, {}),
        ("ci", {"requests_per_minute": 0}),
        ("ci", {"requests_per_minute": 2**31}),  # more than its Integer column holds
        ("ci", {"tokens_per_day": 2**63}),
    ]:
        with pytest.raises(ValueError):
            await keys.create(name, **limits)
    key, _ = await keys.create("ci", requests_per_minute=1, tokens_per_day=1)
    with pytest.raises(ValueError, match="naive"):
        await keys.admit_request(key, now=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="tokens"):
        await keys.record_tokens(key, -1)


async def test_the_per_minute_limit_denies_without_counting_and_resets(
    keys: KeyStore, database_url: str
) -> None:
    key, _ = await keys.create("ci", requests_per_minute=3)
    assert [(await keys.admit_request(key, now=NOON)).allowed for _ in range(3)] == [True] * 3
    for _ in range(3):
        denied = await keys.admit_request(key, now=NOON)
        assert not denied.allowed and denied.retry_after_s == 45
        assert "3 requests per minute" in denied.reason
    late = await keys.admit_request(key, now=NOON.replace(second=59, microsecond=500_000))
    assert not late.allowed and late.retry_after_s == 1
    assert 0 < denied.retry_after_s <= 60

    counts = await _rows(database_url, "SELECT kind, count FROM api_key_usage")
    assert [tuple(row) for row in counts] == [("minute", 3)]  # denials were not counted
    next_minute = NOON + timedelta(minutes=1)
    assert (await keys.admit_request(key, now=next_minute)).allowed
    counts = await _rows(database_url, "SELECT kind, count FROM api_key_usage")
    assert [tuple(row) for row in counts] == [("minute", 1)]  # the old window was pruned


async def test_the_daily_token_limit_denies_until_utc_midnight(
    keys: KeyStore, database_url: str
) -> None:
    key, _ = await keys.create("ci", requests_per_minute=100, tokens_per_day=100)
    evening = NOON.replace(hour=23, minute=59, second=30)
    await keys.record_tokens(key, 60, now=NOON)
    assert (await keys.admit_request(key, now=NOON)).allowed
    await keys.record_tokens(key, 50, now=NOON)  # the request that crosses the limit completed
    denied = await keys.admit_request(key, now=evening)
    assert not denied.allowed and denied.retry_after_s == 30
    assert "daily token limit of 100" in denied.reason and "110 used" in denied.reason
    minutes = await _rows(
        database_url, "SELECT window_start FROM api_key_usage WHERE kind='minute'"
    )
    assert len(minutes) == 1  # the denied request used no minute quota

    tomorrow = NOON + timedelta(days=1)
    assert (await keys.admit_request(key, now=tomorrow)).allowed
    await keys.record_tokens(key, 5, now=tomorrow)
    days = await _rows(database_url, "SELECT count FROM api_key_usage WHERE kind='day'")
    assert [row.count for row in days] == [5]  # yesterday's counter was pruned


async def test_usage_is_this_minute_and_today_against_each_limit(keys: KeyStore) -> None:
    limited, _ = await keys.create("limited", requests_per_minute=5, tokens_per_day=1000)
    minute_only, _ = await keys.create("minute-only", requests_per_minute=5)
    free, _ = await keys.create("free")
    for key in (limited, limited, minute_only, free):
        assert (await keys.admit_request(key, now=NOON)).allowed
    await keys.record_tokens(limited, 120, now=NOON)
    await keys.record_tokens(minute_only, 50, now=NOON)  # no daily limit: not counted

    usage = await keys.usage([limited, minute_only, free], now=NOON)
    assert usage[limited.id] == KeyUsage(requests_this_minute=2, tokens_today=120)
    assert usage[minute_only.id] == KeyUsage(requests_this_minute=1, tokens_today=None)
    assert usage[free.id] == KeyUsage(requests_this_minute=None, tokens_today=None)
    later = await keys.usage([limited], now=NOON + timedelta(minutes=1))
    assert later[limited.id] == KeyUsage(requests_this_minute=0, tokens_today=120)
    tomorrow = await keys.usage([limited], now=NOON + timedelta(days=1))
    assert tomorrow[limited.id] == KeyUsage(requests_this_minute=0, tokens_today=0)
    assert await keys.usage([], now=NOON) == {}


async def test_keys_without_limits_touch_no_counters(keys: KeyStore, database_url: str) -> None:
    key, _ = await keys.create("ci")
    assert all([(await keys.admit_request(key, now=NOON)).allowed for _ in range(20)])
    await keys.record_tokens(key, 10**9, now=NOON)
    assert await _rows(database_url, "SELECT * FROM api_key_usage") == []


async def test_two_workers_share_the_counters(keys: KeyStore, database_url: str) -> None:
    # Two KeyStores with their own connection pools stand for two uvicorn worker processes.
    limit = 8
    key, _ = await keys.create("ci", requests_per_minute=limit, tokens_per_day=1000)
    async with await Database.open(database_url, migrate=False) as other_database:
        other = KeyStore(other_database)
        stores = [keys, other] * limit
        async with asyncio.timeout(30):
            admissions = await asyncio.gather(*(s.admit_request(key, now=NOON) for s in stores))
        assert sum(a.allowed for a in admissions) == limit
        assert {a.retry_after_s for a in admissions if not a.allowed} == {45}

        await asyncio.gather(*(s.record_tokens(key, 100, now=NOON) for s in stores[:10]))
        later = NOON + timedelta(minutes=5)
        assert not (await keys.admit_request(key, now=later)).allowed
        assert not (await other.admit_request(key, now=later)).allowed


# --- the FastAPI dependency and error handlers, behind a real server -------------------------


class Message(BaseModel):
    role: str
    content: str


class EchoBody(BaseModel):
    messages: list[Message]


def _app(settings: Settings, url: str | None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if url is None:
            yield
            return
        # Opened on the server's own event loop: asyncpg connections belong to one loop.
        async with await Database.open(url, migrate=False) as store_database:
            store = KeyStore(store_database)
            app.state.keys = store
            yield

    app = FastAPI(lifespan=lifespan)
    app.state.settings = settings
    install_error_handlers(app)

    @app.get("/whoami")
    async def whoami(key: ApiKeyDep, request: Request) -> dict[str, Any]:
        await record_token_usage(request, 7)
        return {"name": key.name, "prefix": request.state.api_key.prefix}

    @app.post("/echo")
    async def echo(body: EchoBody, key: ApiKeyDep) -> dict[str, Any]:
        return {"messages": len(body.messages)}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret us-leaked-key in an exception")

    return app


@asynccontextmanager
async def _serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` under uvicorn on 127.0.0.1 in a thread, and a client for it."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        async with asyncio.timeout(20):
            while not server.started:
                assert thread.is_alive(), "the server failed to start"
                await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            yield client
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 10)


def _error(response: httpx.Response, status: int, code: str | None) -> dict[str, Any]:
    """The ``error`` object of an OpenAI-shaped error response, after checking its shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code and body["error"]["message"]
    return body["error"]


async def test_a_missing_unknown_or_revoked_key_is_a_401(keys: KeyStore, database_url: str) -> None:
    key, plaintext = await keys.create("ci")
    _, revoked = await keys.create("old")
    await keys.revoke(revoked[:12])
    async with _serve(_app(Settings(), database_url)) as client:
        ok = await client.get("/whoami", headers={"Authorization": f"Bearer {plaintext}"})
        assert ok.status_code == 200 and ok.json() == {"name": "ci", "prefix": key.prefix}
        for headers in (
            {},
            {"Authorization": f"Basic {plaintext}"},
            {"Authorization": "Bearer"},
            {"Authorization": f"Bearer {plaintext}x"},
            {"Authorization": f"Bearer {revoked}"},
        ):
            response = await client.get("/whoami", headers=headers)
            error = _error(response, 401, "invalid_api_key")
            assert error["type"] == "invalid_request_error"
            assert response.headers["www-authenticate"] == "Bearer"
            assert plaintext not in response.text and revoked not in response.text


async def test_limits_give_429_with_retry_after(keys: KeyStore, database_url: str) -> None:
    _, per_minute = await keys.create("ci", requests_per_minute=2)
    _, per_day = await keys.create("batch", tokens_per_day=10)
    now = datetime.now(UTC)
    if now.second >= 57:  # keep the three requests inside one minute window
        await asyncio.sleep(60.2 - now.second - now.microsecond / 1e6)
    async with _serve(_app(Settings(), database_url)) as client:
        headers = {"Authorization": f"Bearer {per_minute}"}
        assert [(await client.get("/whoami", headers=headers)).status_code for _ in "ab"] == [
            200
        ] * 2
        response = await client.get("/whoami", headers=headers)
        error = _error(response, 429, "rate_limit_exceeded")
        assert error["type"] == "rate_limit_error" and "2 requests per minute" in error["message"]
        assert 0 < int(response.headers["retry-after"]) <= 60

        headers = {"Authorization": f"Bearer {per_day}"}
        assert (await client.get("/whoami", headers=headers)).status_code == 200  # records 7
        assert (await client.get("/whoami", headers=headers)).status_code == 200  # records 14
        response = await client.get("/whoami", headers=headers)
        assert "daily token limit of 10" in _error(response, 429, "rate_limit_exceeded")["message"]
        assert 0 < int(response.headers["retry-after"]) <= 86_400


async def test_errors_are_in_openai_shape_and_auth_can_be_off() -> None:
    settings = Settings(api=ApiSettings(auth=False))
    async with _serve(_app(settings, None)) as client:
        assert (await client.get("/whoami")).json() == {"name": "anonymous", "prefix": ""}

        response = await client.post("/echo", json={"messages": [{"role": "user"}]})
        error = _error(response, 400, None)
        assert error["type"] == "invalid_request_error" and error["param"] == "messages.0.content"
        assert "'messages.0.content': Field required" in error["message"]

        response = await client.post(
            "/echo", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert "not valid JSON" in _error(response, 400, None)["message"]

        assert _error(await client.get("/nowhere"), 404, "not_found")["message"] == "Not Found"
        assert _error(await client.delete("/whoami"), 405, "method_not_allowed")

        response = await client.get("/boom")
        error = _error(response, 500, "internal_error")
        assert error["type"] == "server_error"
        assert "secret" not in response.text and "Traceback" not in response.text


def test_validation_messages_are_capped() -> None:
    errors = [{"loc": ("body", "messages", i), "msg": "bad"} for i in range(8)]
    message, param = describe_validation_errors(errors)
    assert param == "messages.0" and message.endswith("(and 3 more)")
    assert describe_validation_errors([]) == ("The request is invalid.", None)


# --- the CLI ---------------------------------------------------------------------------------

cli = typer.Typer()
cli.add_typer(keys_cmd.app, name="keys")
runner = CliRunner()


async def _invoke(*args: str) -> Any:
    # The commands call asyncio.run, which cannot run on this test's (running) loop.
    return await asyncio.to_thread(runner.invoke, cli, ["keys", *args])


async def test_keys_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    created = await _invoke("create", "laptop", "--rpm", "5")
    assert created.exit_code == 0, created.output
    plaintext = created.stdout.strip()
    assert plaintext.startswith("us-") and "cannot be shown again" in created.stderr

    as_json = await _invoke("create", "ci", "--rpm", "0", "--json")
    data = json.loads(as_json.stdout)
    assert data["key"].startswith("us-") and data["prefix"] == data["key"][:12]
    assert data["requests_per_minute"] is None and data["tokens_per_day"] == 1_000_000

    listed = await _invoke("list")
    assert listed.exit_code == 0 and plaintext[:12] in listed.stdout and "laptop" in listed.stdout
    assert plaintext not in listed.stdout and data["key"] not in listed.stdout
    lines = [json.loads(line) for line in (await _invoke("list", "--json")).stdout.splitlines()]
    assert [line["name"] for line in lines] == ["laptop", "ci"]
    assert all(set(line) == set(ApiKey.__dataclass_fields__) for line in lines)

    admin = json.loads((await _invoke("create", "operator", "--admin", "--json")).stdout)
    assert admin["admin"] is True and data["admin"] is False
    table = (await _invoke("list")).stdout.splitlines()
    [operator_row] = [row for row in table if "operator" in row]
    [laptop_row] = [row for row in table if "laptop" in row]
    assert " yes " in operator_row and " yes " not in laptop_row

    revoked = await _invoke("revoke", plaintext[:12])
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    async with await Database.open(get_settings().database_url) as store_database:
        store = KeyStore(store_database)
        assert await store.authenticate(plaintext) is None
        assert await store.authenticate(data["key"]) is not None
    assert "laptop" not in (await _invoke("list")).stdout
    assert "revoked" in (await _invoke("list", "--all")).stdout

    missing = await _invoke("revoke", "us-nothing")
    assert missing.exit_code != 0 and isinstance(missing.exception, KeyNotFound)
    bad = await _invoke("create", " ")
    assert bad.exit_code == 2 and "key name" in bad.output
