"""The fault matrix: every fault a dependency can throw at a run, in every mode, through the real
API (uvicorn on 127.0.0.1, the ``openai`` client, a real SQLite transcript store).

Whatever the fault, a request ends in an answer — marked degraded, in the
``x-understudy-degraded`` header and the body alike, when a fallback gave it — or in an
OpenAI-shaped 4xx/503, never a 500; and its run is in the transcript store under the
``x-understudy-run-id`` it was answered with. A fault a mode never meets (a tool fault without a
lead that calls tools) is run all the same: the invariants hold for every cell.

The lead is scripted (:class:`~orchestrator.testing.ScriptedLead`, the paid-API boundary); the
specialists are served by a scripted vLLM-compatible server, or by nothing at all (SLM down), or
by the local backend with adapters that cannot load. The database rows take the database away
(the run is spooled, then drained into it) or hold its write lock while the request runs.
Budgets are tiny, so a hang costs seconds.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy.engine import make_url
from starlette.responses import JSONResponse, Response

from orchestrator.testing import ScriptedLead, Step, failure, reply, tool_calls
from orchestrator.transcripts import RunNotFound, TranscriptStore
from serving.api.app import create_app
from serving.settings import Settings
from serving.stores import transcript_spool
from tests.helpers.http_server import chat_completion, free_port, serve, serve_app, sleep_then
from tests.helpers.outage import take_down
from tests.helpers.stores import open_store

RUN_BUDGET_S = 3.0
"""Each run's budget: what a hanging dependency costs a cell."""
SPOOL_DRAIN_S = 0.2
"""How often the servers write spooled transcripts to their database."""
RECORD_WAIT_S = 15.0
"""How long a spooled run may take to reach the database once it is back."""
MODES = ["llm", "router", "cascade", "slm"]
QUESTION = "What is 12 + 30? Answer with the number only."
MESSAGES: list[Any] = [{"role": "user", "content": QUESTION}]
RUN_ID = "x-understudy-run-id"
DEGRADED = "x-understudy-degraded"


class FakeSLM:
    """A vLLM-compatible server whose chat completions behave as the cell asks: ``ok`` (a
    confident short answer), ``error`` (a 400 the backend raises on) or ``hang``."""

    def __init__(self) -> None:
        self.behaviour = "ok"

    async def __call__(self, path: str, _body: dict[str, Any]) -> Response:
        if path.endswith("/models"):
            names = ["smollm2-135m", "math", "email", "code"]
            return JSONResponse({"object": "list", "data": [{"id": n} for n in names]})
        if not path.endswith("/chat/completions"):
            return JSONResponse({})
        if self.behaviour == "hang":
            return await sleep_then(RUN_BUDGET_S + 1, chat_completion("42", [-0.01]))
        if self.behaviour == "error":
            return JSONResponse({"error": {"message": "scripted refusal"}}, status_code=400)
        return chat_completion("42", [-0.01, -0.02])


class LeadPlay:
    """What the scripted lead does in the current cell, whatever the run asks it."""

    def __init__(self) -> None:
        self.step: Callable[[dict[str, Any]], Step] = delegate

    def __call__(self, body: dict[str, Any]) -> Step:
        return self.step(body)


def calls_once(tool: str, arguments: dict[str, Any]) -> Callable[[dict[str, Any]], Step]:
    """A lead that calls ``tool`` once (when it has tools), then answers."""

    def step(body: dict[str, Any]) -> Step:
        if not body.get("tools") or any(m.get("role") == "tool" for m in body["messages"]):
            return reply("The answer is 42.")
        return tool_calls((tool, arguments))

    return step


delegate = calls_once("math_specialist", {"request": QUESTION})
"""The lead of the rows where something else fails: it asks the math specialist, then answers."""


def always(step: Step) -> Callable[[dict[str, Any]], Step]:
    return lambda _body: step


@dataclass
class Deployment:
    """One API server and the fakes behind it."""

    url: str
    settings: Settings


@dataclass(frozen=True)
class Fault:
    """One row of the matrix: where it is served, and how the fakes misbehave."""

    name: str
    deployment: str
    """``fake_slm`` (scripted vLLM), ``slm_down`` (nothing listening) or ``unloadable``."""
    slm: str = "ok"
    lead: Callable[[dict[str, Any]], Step] = delegate
    failing_tool: str | None = None
    """The tool that fails in this row: wherever it was called, its call and error are in the
    transcript (a call the run's deadline cut included)."""
    during: Callable[[Deployment], AbstractContextManager[None]] | None = None
    """What the row does to the deployment while the request runs (a database made locked or
    read-only, say), undone afterwards."""


FAULTS = [
    Fault("tool_raises", "fake_slm", slm="error", failing_tool="math_specialist"),
    Fault(
        "calculator_raises",
        "fake_slm",
        lead=calls_once("calculator", {"expression": "1/"}),
        failing_tool="calculator",
    ),
    Fault("tool_hangs", "fake_slm", slm="hang", failing_tool="math_specialist"),
    Fault("slm_down", "slm_down", failing_tool="math_specialist"),
    Fault("model_load_failure", "unloadable", failing_tool="math_specialist"),
    Fault("lead_500", "fake_slm", lead=always(failure(500))),
    Fault("lead_429", "fake_slm", lead=always(failure(429))),
    Fault("lead_timeout", "fake_slm", lead=always(reply("late", delay_s=RUN_BUDGET_S + 1))),
    Fault("lead_bad_json", "fake_slm", lead=always(tool_calls(("calculator", '{"expr')))),
    Fault("lead_unknown_tool", "fake_slm", lead=always(tool_calls(("no_such_tool", {})))),
]


@contextmanager
def database_gone(api: Deployment) -> Iterator[None]:
    """The database file is taken away while the request runs: the run's record must go to the
    spool, and reach the database once it is back (:func:`_recorded` waits for the drain)."""
    bring_back = asyncio.run(take_down(api.settings.database_url))
    try:
        yield
        assert transcript_spool(api.settings).pending() == 1, "the run was not spooled"
    finally:
        asyncio.run(bring_back())


@contextmanager
def database_locked(api: Deployment) -> Iterator[None]:
    """Another process holds SQLite's write lock for a while (well inside its busy timeout):
    the run waits for it and records, without failing the request."""
    path = make_url(api.settings.database_url).database or ""
    locked = threading.Event()

    def hold_the_lock() -> None:
        connection = sqlite3.connect(path, isolation_level=None)
        try:
            connection.execute("BEGIN EXCLUSIVE")
            locked.set()
            time.sleep(LOCK_HELD_S)
            connection.execute("COMMIT")
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    assert locked.wait(10), "could not take the database's write lock"
    try:
        yield
    finally:
        holder.join()


LOCK_HELD_S = 1.5
DATABASE_FAULTS = [
    Fault("database_gone", "fake_slm", during=database_gone),
    Fault("database_locked", "fake_slm", during=database_locked),
]
"""Rows for a database that refuses writes: gone (the run is spooled, then drained into it) or
locked by another process (the write waits for the lock)."""


@pytest.fixture(scope="module")
def lead() -> Iterator[tuple[ScriptedLead, LeadPlay]]:
    play = LeadPlay()
    scripted = ScriptedLead([play], repeat_last=True).start()
    yield scripted, play
    scripted.stop()


@pytest.fixture(scope="module")
def fake_slm() -> Iterator[tuple[str, FakeSLM]]:
    slm = FakeSLM()
    with serve(slm) as (url, _seen):
        yield f"{url}/v1", slm


@pytest.fixture(scope="module")
def deployments(
    lead: tuple[ScriptedLead, LeadPlay],
    fake_slm: tuple[str, FakeSLM],
    smollm2_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str], Deployment]]:
    """The API servers of the matrix, each started when a row first needs it."""
    started: dict[str, Deployment] = {}
    servers = ExitStack()
    slm_by_deployment: dict[str, dict[str, Any]] = {
        "fake_slm": {"backend": "vllm", "base_url": fake_slm[0]},
        "slm_down": {"backend": "vllm", "base_url": f"http://127.0.0.1:{free_port()}/v1"},
        "unloadable": {"backend": "local", "base_model": str(smollm2_dir)},
    }

    def deployment(name: str) -> Deployment:
        if name not in started:
            home = tmp_path_factory.mktemp(name)
            # The fake's answer (mean probability 0.985) is below the threshold: the cascade
            # escalates, so lead faults reach it too.
            specialists: dict[str, Any] = {
                "math": {"confidence_threshold": 0.99, "generation": {"max_tokens": 8}}
            }
            if name == "unloadable":  # every specialist's adapter is missing
                for specialist in ("math", "email", "code"):
                    adapter = {"adapter": str(home / "missing-adapter")}
                    specialists[specialist] = {**specialists.get(specialist, {}), **adapter}
            settings = Settings(
                home=home,
                database={
                    "url": f"sqlite+aiosqlite:///{home / 'understudy.db'}",
                    "spool_drain_s": SPOOL_DRAIN_S,
                },
                api={"auth": False},
                lead={
                    "base_url": lead[0].base_url,
                    "model": "gpt-4o-mini",
                    "max_retries": 0,
                    "timeout_s": RUN_BUDGET_S,
                },
                run={"max_seconds": RUN_BUDGET_S},
                slm={**slm_by_deployment[name], "max_retries": 0, "timeout_s": 30},
                batch={"api_worker": False},
                specialists=specialists,
            )
            url = servers.enter_context(serve_app(create_app(settings)))
            started[name] = Deployment(url, settings)
        return started[name]

    with servers:
        yield deployment


async def _recorded(settings: Settings, run_id: str) -> Any:
    """The run as the store has it; a spooled run is waited for until the drain writes it."""
    store = await open_store(TranscriptStore, settings.database_url)
    try:
        for _ in range(int(RECORD_WAIT_S / SPOOL_DRAIN_S)):
            try:
                return await store.get_run(run_id)
            except RunNotFound:
                await asyncio.sleep(SPOOL_DRAIN_S)
        return await store.get_run(run_id)
    finally:
        await store.database.close()


@dataclass
class Outcome:
    """What the client got: an answer, and whether it was marked degraded, or an error."""

    headers: httpx.Headers
    answer: str | None = None
    degraded: bool | None = None
    error: dict[str, Any] | None = None


def ask_whole(client: openai.OpenAI, model: str) -> Outcome:
    try:
        raw = client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
    except openai.APIStatusError as exc:
        return refused(exc)
    body = json.loads(raw.text)
    marked = raw.headers.get(DEGRADED) == "true"
    assert marked is body["understudy"]["degraded"], "the header and the body disagree"
    return Outcome(raw.headers, body["choices"][0]["message"]["content"], marked)


def ask_streaming(client: openai.OpenAI, model: str) -> Outcome:
    """A stream's outcome: its final chunk's, or its error event's (a stream's status is 200)."""
    try:
        with client.chat.completions.with_streaming_response.create(
            model=model, messages=MESSAGES, stream=True
        ) as response:
            text, finals = [], []
            try:
                for chunk in response.parse():
                    text += [choice.delta.content or "" for choice in chunk.choices]
                    finals += [chunk for choice in chunk.choices if choice.finish_reason]
            except openai.APIError as exc:  # the error event, as the openai client reads it
                assert isinstance(exc.body, dict), exc
                return Outcome(response.headers, error=exc.body)
    except openai.APIStatusError as exc:
        return refused(exc)
    [final] = finals
    return Outcome(response.headers, "".join(text), final.model_extra["understudy"]["degraded"])


def refused(exc: openai.APIStatusError) -> Outcome:
    assert 400 <= exc.status_code < 500 or exc.status_code == 503, exc.response.text
    return Outcome(exc.response.headers, error=exc.response.json()["error"])


def asks(mode: str, tool: str) -> bool:
    """Whether a run in ``mode`` calls ``tool``: the lead does (router, and cascade escalating);
    ``slm`` asks the specialist itself."""
    return mode in ("router", "cascade") or (mode == "slm" and tool.endswith("_specialist"))


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fault", [*FAULTS, *DATABASE_FAULTS], ids=lambda fault: fault.name)
def test_every_fault_ends_in_an_answer_or_a_clean_error_and_a_recorded_run(
    deployments: Callable[[str], Deployment],
    lead: tuple[ScriptedLead, LeadPlay],
    fake_slm: tuple[str, FakeSLM],
    fault: Fault,
    mode: str,
    stream: bool,
) -> None:
    api = deployments(fault.deployment)
    lead[1].step = fault.lead
    fake_slm[1].behaviour = fault.slm
    client = openai.OpenAI(base_url=f"{api.url}/v1", api_key="unused", max_retries=0, timeout=60)
    with fault.during(api) if fault.during else nullcontext():
        outcome = (ask_streaming if stream else ask_whole)(client, f"understudy-{mode}")

    if outcome.error is None:
        assert outcome.answer
    else:
        error = outcome.error
        assert error["message"] and error["type"] and error["code"], error
    run = asyncio.run(_recorded(api.settings, outcome.headers[RUN_ID]))
    assert run.mode == mode
    answered = outcome.error is None or outcome.error["code"] == "degraded"
    assert (run.answer is not None) is answered
    if outcome.error is None:
        assert run.degraded is outcome.degraded
    if fault.failing_tool and asks(mode, fault.failing_tool):
        assert any(c.name == fault.failing_tool and c.error for c in run.tool_calls), run
