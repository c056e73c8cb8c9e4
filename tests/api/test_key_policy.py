"""The degradation policy per API key: ``keys create --on-degraded``, and through the real API
the precedence request > key > server setting (``UNDERSTUDY_API_DEGRADED``)."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest
import typer
from typer.testing import CliRunner

from database import Database
from orchestrator.testing import failure
from serving.cli import keys_cmd
from serving.keys import KeyStore
from serving.protocol import OnDegraded
from tests.api import test_chat_api
from tests.api.test_chat_api import Api, understudy

api = test_chat_api.api
"""The chat API's server fixture (SmolLM2 specialists, a scripted lead, a key), used here too."""

DEGRADE = {"understudy": {"on_degraded": "degrade"}}


def make_key(api: Api, policy: OnDegraded | None) -> str:
    async def create() -> str:
        async with await Database.open(api.settings.database_url) as database:
            _, plaintext = await KeyStore(database).create(
                f"policy-{policy}", requests_per_minute=1000, on_degraded=policy
            )
            return plaintext

    return asyncio.run(create())


def degraded_answer(api: Api, key: str, **kwargs: object) -> int:
    """The status a router request gets when the lead fails and a specialist answers."""
    api.lead.enqueue(failure(500))
    try:
        completion = api.client(key).chat.completions.create(
            model="understudy-router",
            messages=[{"role": "user", "content": "What is 12 + 30?"}],
            **kwargs,
        )
    except openai.APIStatusError as exc:
        assert exc.response.json()["error"]["code"] == "degraded"
        return exc.status_code
    assert understudy(completion)["degraded"] is True
    return 200


@pytest.fixture
def server_says_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Listed before ``api``, so the server starts with this setting."""
    monkeypatch.setenv("UNDERSTUDY_API_DEGRADED", "error")


def test_a_key_set_to_error_gets_503_where_the_server_would_degrade(api: Api) -> None:
    strict = make_key(api, OnDegraded.error)
    assert degraded_answer(api, api.key) == 200  # the server's setting: degrade
    assert degraded_answer(api, strict) == 503
    assert degraded_answer(api, strict, extra_body=DEGRADE) == 200  # the request decides last


def test_a_key_set_to_degrade_gets_answers_where_the_server_would_refuse(
    server_says_error: None, api: Api
) -> None:
    lenient = make_key(api, OnDegraded.degrade)
    assert degraded_answer(api, api.key) == 503  # the server's setting: error
    assert degraded_answer(api, lenient) == 200
    error = {"understudy": {"on_degraded": "error"}}
    assert degraded_answer(api, lenient, extra_body=error) == 503


def test_keys_create_takes_a_policy_and_list_shows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    cli = typer.Typer()
    cli.add_typer(keys_cmd.app, name="keys")
    runner = CliRunner()

    created = runner.invoke(cli, ["keys", "create", "strict", "--on-degraded", "error", "--json"])
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["on_degraded"] == "error"
    plain = runner.invoke(cli, ["keys", "create", "plain", "--json"])
    assert json.loads(plain.stdout)["on_degraded"] is None

    table = runner.invoke(cli, ["keys", "list"]).stdout.splitlines()
    [strict_row] = [row for row in table if "strict" in row]
    [plain_row] = [row for row in table if "plain" in row]
    assert " error " in strict_row and "(server setting)" in plain_row

    wrong = runner.invoke(cli, ["keys", "create", "x", "--on-degraded", "sometimes"])
    assert wrong.exit_code == 2 and "on-degraded" in wrong.output
