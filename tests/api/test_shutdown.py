"""A stopping server answers in OpenAI's words: ``understudy serve`` in a process of its own,
stopped with real signals while runs wait on a lead that hangs; and the drain's gate on an app
whose drain has begun. Never a plain-text 500, never a stream cut without an error event, and
every run stopped is recorded."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from orchestrator.outcome import FailureKind
from orchestrator.testing import ScriptedLead, reply
from orchestrator.transcripts import RunRecord, TranscriptStore
from serving.api.app import create_app
from serving.settings import Settings
from tests.helpers.cli import understudy_serve
from tests.helpers.stores import open_store

HANGS = reply("too late", delay_s=600)
"""A lead that answers long after any drain: only the drain can end the runs waiting on it."""
QUESTION = [{"role": "user", "content": "What is 12 + 30?"}]
RUN_ID = "x-understudy-run-id"


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]
    database_url: str
    lead: ScriptedLead

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0)


@pytest.fixture
def served(home_with_smollm2: Path, tmp_path: Path) -> Iterator[Served]:
    lead = ScriptedLead([HANGS], repeat_last=True).start()
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    env = {
        "UNDERSTUDY_LEAD_BASE_URL": lead.base_url,
        "UNDERSTUDY_LEAD_MODEL": "gpt-4o-mini",
        "UNDERSTUDY_LEAD_MAX_RETRIES": "0",
        "UNDERSTUDY_API_AUTH": "false",
        "UNDERSTUDY_DATABASE_URL": database_url,
    }
    try:
        with understudy_serve(env=env) as (process, url):
            yield Served(url, process, database_url, lead)
    finally:
        lead.stop()


def in_thread(work: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``work()`` in a thread; its result or exception lands in the returned dict."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = work()
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


async def recorded(database_url: str, run_id: str) -> RunRecord:
    store = await open_store(TranscriptStore, database_url)
    try:
        return await store.get_run(run_id)
    finally:
        await store.database.close()


def test_runs_cut_by_a_stopping_server_get_503_shutting_down_and_are_recorded(
    served: Served,
) -> None:
    client = served.client()
    whole, whole_outcome = in_thread(
        lambda: client.chat.completions.create(model="understudy-llm", messages=QUESTION)
    )
    chunks: list[Any] = []
    stream_headers: dict[str, str] = {}

    def stream() -> None:
        with client.chat.completions.with_streaming_response.create(
            model="understudy-router", messages=QUESTION, stream=True
        ) as response:
            stream_headers.update(response.headers)
            for chunk in response.parse():
                chunks.append(chunk)

    streamed, stream_outcome = in_thread(stream)
    deadline = time.monotonic() + 60
    while len(served.lead.requests) < 2:  # both runs are waiting on the lead
        assert time.monotonic() < deadline, "the runs never reached the lead"
        time.sleep(0.05)

    served.process.send_signal(signal.SIGTERM)  # the drain begins: the runs may still finish
    time.sleep(0.5)
    assert whole.is_alive() and streamed.is_alive()
    served.process.send_signal(signal.SIGTERM)  # a second stop ends the drain now
    whole.join(timeout=30)
    streamed.join(timeout=30)
    served.process.wait(timeout=30)

    error = whole_outcome["error"]
    assert isinstance(error, openai.APIStatusError) and error.status_code == 503
    body = error.response.json()["error"]
    assert body["code"] == "shutting_down" and body["type"] == "server_error" and body["message"]
    assert error.response.headers["retry-after"] == "1"

    cut = stream_outcome["error"]  # the stream's error event, as the openai client reads it
    assert isinstance(cut, openai.APIError) and not isinstance(cut, openai.APIStatusError)
    assert isinstance(cut.body, dict) and cut.body["code"] == "shutting_down"
    assert chunks and chunks[0].choices[0].delta.role == "assistant"
    assert not any(c.choices and c.choices[0].finish_reason for c in chunks)

    whole_run = asyncio.run(recorded(served.database_url, error.response.headers[RUN_ID]))
    streamed_run = asyncio.run(recorded(served.database_url, stream_headers[RUN_ID]))
    for run in (whole_run, streamed_run):
        assert run.answer is None and run.failure is not None
        assert run.failure.kind is FailureKind.shutdown
    assert (whole_run.mode, streamed_run.mode) == ("llm", "router")
    for run in (whole_run, streamed_run):
        assert run.lead_calls  # the lead call the drain cut is kept


async def test_a_draining_app_refuses_new_api_requests_but_answers_probes(
    isolated_env: Path,
) -> None:
    app = create_app(Settings(api={"auth": False}))
    app.state.drain.begin()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        client = openai.AsyncOpenAI(
            base_url="http://api/v1", api_key="unused", http_client=http, max_retries=0
        )
        with pytest.raises(openai.APIStatusError) as refused:
            await client.chat.completions.create(model="understudy-llm", messages=QUESTION)
        assert (await http.get("/healthz")).status_code == 200
    assert refused.value.status_code == 503
    assert refused.value.response.json()["error"]["code"] == "shutting_down"
    assert refused.value.response.headers["retry-after"] == "1"
