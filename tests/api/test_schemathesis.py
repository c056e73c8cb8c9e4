"""Property-based API test: schemathesis generates requests from the live ``/openapi.json``
(bodies that fit the schema and bodies that break it) and no operation may answer with a 5xx.

The server is the real app under uvicorn on 127.0.0.1 with every dependency fast and healthy (a
2-layer random Llama as the specialists' base model, a scripted lead that always answers), so a
5xx can only be a bug in the API, never a legitimately unavailable upstream.

Each operation is a Hypothesis test built from ``operation.as_strategy(mode)``, run in a subtest
of its own so that one failure does not hide the others. (``schemathesis.pytest.from_fixture``
would do the same, but it sets ``Function._nodeid``, which pytest 9.2 no longer has.)
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.schemas import APIOperation

from orchestrator.testing import ScriptedLead, reply
from serving.api.app import create_app
from serving.keys import KeyStore
from serving.settings import Settings
from tests.helpers.api_server import start_server
from tests.helpers.stores import open_store

MAX_EXAMPLES = 25
"""Generated requests per operation and generation mode."""
REQUEST_TIMEOUT_S = 60
TINY_ANSWERS = json.dumps(
    {name: {"generation": {"max_tokens": 8}} for name in ("math", "email", "code")}
)
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,  # a request that runs the model takes longer than Hypothesis's 200 ms
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same requests every run: a failure here is reproducible
    database=None,
    print_blob=True,
)


@dataclass
class LiveApi:
    url: str
    key: str


@pytest.fixture
def live_api(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LiveApi]:
    """The API with auth on, on SQLite, with a fast model, a lead that answers everything and an
    admin key."""
    lead = ScriptedLead([reply("ok")], repeat_last=True).start()
    monkeypatch.setenv("UNDERSTUDY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'api.db'}")
    monkeypatch.setenv("UNDERSTUDY_SLM_BASE_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("UNDERSTUDY_LEAD_BASE_URL", lead.base_url)
    monkeypatch.setenv("UNDERSTUDY_LEAD_MODEL", "gpt-4o-mini")
    monkeypatch.setenv("UNDERSTUDY_LEAD_MAX_RETRIES", "0")
    monkeypatch.setenv("UNDERSTUDY_SPECIALISTS", TINY_ANSWERS)
    app_settings = Settings()
    assert app_settings.api.auth

    async def make_key() -> str:
        keys = await open_store(KeyStore, app_settings.database_url)
        # An admin key: the /v1/admin operations are fuzzed past their 403.
        _, plaintext = await keys.create("schemathesis", requests_per_minute=100_000, admin=True)
        await keys.database.close()
        return plaintext

    key = asyncio.run(make_key())
    server, thread, url = start_server(create_app(app_settings))
    try:
        yield LiveApi(url=url, key=key)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        lead.stop()


def modes_for(operation: APIOperation) -> list[GenerationMode]:
    """Both modes, but only positive for an operation without inputs: nothing there to break."""
    has_inputs = bool(list(operation.body)) or any(True for _ in operation.iter_parameters())
    return list(GenerationMode) if has_inputs else [GenerationMode.POSITIVE]


@dataclass
class Known:
    """Values random generation practically never hits: served models, stored runs."""

    models: list[str]
    run_ids: list[str]


def coherent(messages: list[Any]) -> None:
    """``messages`` made a conversation the API answers: each has its content, tool calls only
    on assistant turns, a tool turn answers a call id, a user turn last.

    The schema describes one message object for every role, so it cannot say that these fields
    depend on the role; generated bodies nearly always break one of the rules.
    """
    for message in messages:
        if not isinstance(message, dict) or "role" not in message:
            continue
        if message["role"] != "assistant":
            message.pop("tool_calls", None)
        if message["role"] == "tool" and message.get("tool_call_id") is None:
            message["role"] = "user"
        if message.get("content") is None and not message.get("tool_calls"):
            message["content"] = "hi"
    last = messages[-1] if messages else None
    if isinstance(last, dict) and "role" in last:
        last.update(role="user", content=last.get("content") or "hi")
        last.pop("tool_calls", None)


def steered(cases: st.SearchStrategy[Case], known: Known) -> st.SearchStrategy[Case]:
    """``cases``, often with a served ``model``, an existing ``run_id``, coherent messages.

    Without this nearly every generated body stops at a 404 (unknown model or run) or a 400
    (see :func:`coherent`) before reaching the orchestrator or the store. Only fields the
    generated body already has are changed.
    """

    def steer(drawn: tuple[Case, str | None, str | None, bool]) -> Case:
        case, model, run_id, make_coherent = drawn
        body = case.body
        if isinstance(body, dict):
            if model is not None and "model" in body:
                body["model"] = model
            if run_id is not None and "run_id" in body:
                body["run_id"] = run_id
            messages = body.get("messages")
            if make_coherent and isinstance(messages, list):
                coherent(messages)
        return case

    # Steering comes first in each list: it is what Hypothesis shrinks towards.
    return st.tuples(
        cases,
        st.sampled_from([*known.models, None]),
        st.sampled_from([*known.run_ids, None]),
        st.sampled_from([True, False]),
    ).map(steer)


def no_server_error_in_stream(case: Case, response: schemathesis.Response) -> None:
    """A streamed reply has sent its 200 already: a server error comes in-band, as an event."""
    if not response.headers.get("content-type", [""])[0].startswith("text/event-stream"):
        return
    for line in response.text.splitlines():
        if line.startswith("data: {"):
            error = json.loads(line.removeprefix("data: ")).get("error")
            assert error is None or error["status"] < 500, (
                f"server error in the stream: {error}\n{case.as_curl_command()}"
            )


def test_no_operation_answers_with_a_server_error(
    live_api: LiveApi, subtests: pytest.Subtests
) -> None:
    headers = {"Authorization": f"Bearer {live_api.key}"}
    models = httpx.get(f"{live_api.url}/v1/models", headers=headers).json()["data"]
    first = httpx.post(
        f"{live_api.url}/v1/chat/completions",
        headers=headers,
        json={"model": "understudy-llm", "messages": [{"role": "user", "content": "hi"}]},
        timeout=60,
    )
    assert first.status_code == 200, first.text
    known = Known(
        models=[model["id"] for model in models], run_ids=[first.json()["understudy"]["run_id"]]
    )
    schema = schemathesis.openapi.from_url(
        f"{live_api.url}/openapi.json", config=SchemathesisConfig()
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"POST /v1/chat/completions", "POST /v1/feedback"}
    statuses: Counter[tuple[str, int]] = Counter()
    for operation in operations:
        for mode in modes_for(operation):
            with subtests.test(operation=operation.label, mode=mode.value):
                cases = steered(operation.as_strategy(generation_mode=mode), known)

                @FUZZ
                @given(case=cases)
                def answers_without_a_5xx(case: Case) -> None:
                    response = case.call(headers=headers, timeout=REQUEST_TIMEOUT_S)
                    statuses[case.operation.label, response.status_code] += 1
                    case.validate_response(response, checks=[not_a_server_error])
                    no_server_error_in_stream(case, response)

                answers_without_a_5xx()
    # The setup works: generated requests reached real answers, not only 4xx refusals.
    reached = ("POST /v1/chat/completions", "POST /v1/feedback", "GET /v1/admin/runs")
    assert all(statuses[label, 200] for label in reached), sorted(statuses.items())


def test_unpaired_surrogates_are_a_400_not_a_500(live_api: LiveApi) -> None:
    """JSON's ``\\uXXXX`` escapes can spell half a surrogate pair, which no encoder takes: found
    by hand next to the fuzzing above (Hypothesis never generates surrogates)."""
    headers = {"Authorization": f"Bearer {live_api.key}", "Content-Type": "application/json"}
    for content in ('"a\\ud800b"', '[{"type": "text", "text": "\\udfff"}]'):
        for stream in ("false", "true"):
            body = (
                f'{{"model": "understudy-router", "stream": {stream}, '
                f'"messages": [{{"role": "user", "content": {content}}}]}}'
            )
            response = httpx.post(
                f"{live_api.url}/v1/chat/completions", headers=headers, content=body, timeout=60
            )
            assert response.status_code == 400, response.text
            assert response.json()["error"]["param"] == "messages.0.content"
