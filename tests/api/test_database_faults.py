"""A database that refuses writes, seen through the real API (uvicorn on 127.0.0.1, the ``openai``
client): chat still answers and its transcript is spooled, then written when the database takes
writes again; a run nothing can record is a 503; ``/readyz`` says the database cannot be written
and how many transcripts wait; every write route answers 503 ``database_unavailable``, never 500.

The database refuses writes for real: on PostgreSQL it turns read-only (reads still work, which
is what a read-only probe would miss); on SQLite its file is taken away under the running server
(:mod:`tests.helpers.outage`; a live server's SQLite connections would not see a mode change).
Authentication is off here so each request reaches the write under test: the key check reads the
same database, and with the SQLite file gone it would answer its own 503 first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from sqlalchemy.engine import make_url

from orchestrator.testing import ScriptedLead, reply
from orchestrator.transcripts import TranscriptStore
from serving.api.app import create_app
from serving.settings import Settings
from tests.helpers.api_server import start_server
from tests.helpers.outage import read_only, take_down
from tests.helpers.stores import open_store

POLL_S = 0.1
DRAINED_WITHIN_S = 30.0
"""Far above the drain interval (0.1 s here): the bound of a wait, not a measured time."""


@dataclass
class Server:
    url: str
    lead: ScriptedLead
    settings: Settings

    def client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0)


@asynccontextmanager
async def serving(
    home: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, **env: str
) -> AsyncIterator[Server]:
    lead = ScriptedLead([]).start()
    monkeypatch.setenv("UNDERSTUDY_DATABASE_URL", database_url)
    monkeypatch.setenv("UNDERSTUDY_LEAD_BASE_URL", lead.base_url)
    monkeypatch.setenv("UNDERSTUDY_LEAD_MODEL", "gpt-4o-mini")
    monkeypatch.setenv("UNDERSTUDY_LEAD_MAX_RETRIES", "0")
    monkeypatch.setenv("UNDERSTUDY_API_AUTH", "false")
    monkeypatch.setenv("UNDERSTUDY_DATABASE_SPOOL_DRAIN_S", str(POLL_S))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    server, thread, url = start_server(create_app(settings))
    try:
        yield Server(url=url, lead=lead, settings=settings)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        lead.stop()


async def refuse_writes(url: str) -> Callable[[], Awaitable[None]]:
    """Make the database refuse writes under a running server; returns what undoes it."""
    if make_url(url).get_backend_name() == "sqlite":
        return await take_down(url)
    return await read_only(url)


async def readiness(server: Server) -> tuple[int, dict]:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{server.url}/readyz")
    return response.status_code, response.json()


async def ask(server: Server, **kwargs: object):
    return await server.client().chat.completions.with_raw_response.create(
        model="understudy-llm",
        messages=[{"role": "user", "content": "Capital of France?"}],
        **kwargs,
    )


async def test_chat_answers_while_the_database_refuses_writes_and_its_run_is_written_later(
    home_with_smollm2: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serving(home_with_smollm2, database_url, monkeypatch) as server:
        _, ready = await readiness(server)
        assert ready["checks"]["database"] == "ok" and ready["transcripts_spooled"] == 0

        restore = await refuse_writes(database_url)
        try:
            status, unready = await readiness(server)
            assert status == 503 and unready["checks"]["database"].startswith("error")
            server.lead.enqueue(reply("Paris."))
            response = await ask(server)
            assert response.status_code == 200
            assert response.parse().choices[0].message.content == "Paris."
            run_id = response.headers["x-understudy-run-id"]
            _, spooled = await readiness(server)
            assert spooled["transcripts_spooled"] == 1
            async with httpx.AsyncClient() as http:
                metrics = (await http.get(f"{server.url}/metrics")).text
            assert "understudy_transcripts_spooled 1.0" in metrics
        finally:
            await restore()

        ready = await _wait_until_drained(server)
        assert ready["checks"]["database"] == "ok"
    store = await open_store(TranscriptStore, database_url)
    try:
        run = await store.get_run(run_id)
    finally:
        await store.database.close()
    assert (run.answer, run.mode, run.finish_reason) == ("Paris.", "llm", "stop")


async def test_a_run_neither_the_database_nor_the_spool_takes_is_a_503(
    home_with_smollm2: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    unwritable = str(tmp_path / "a-file" / "spool")  # under a file: never a directory
    async with serving(
        home_with_smollm2, database_url, monkeypatch, UNDERSTUDY_DATABASE_SPOOL_DIR=unwritable
    ) as server:
        status, unready = await readiness(server)
        assert status == 503 and "Not a directory" in unready["checks"]["transcript_spool"]
        restore = await refuse_writes(database_url)
        try:
            server.lead.enqueue(reply("Paris."), reply("Paris."))
            with pytest.raises(openai.APIStatusError) as info:
                await ask(server)
            response = info.value.response
            error = response.json()["error"]
            assert response.status_code == 503 and error["code"] == "database_unavailable"
            assert error["type"] == "server_error" and response.headers["retry-after"]
            assert str(make_url(database_url).database) not in response.text  # our words only

            stream = await server.client().chat.completions.create(
                model="understudy-llm",
                messages=[{"role": "user", "content": "Capital of France?"}],
                stream=True,
            )
            with pytest.raises(openai.APIError) as streamed:
                async for _chunk in stream:
                    pass
            assert streamed.value.code == "database_unavailable"
        finally:
            await restore()


async def test_uploads_and_other_writes_answer_503_and_leave_no_orphan_file(
    home_with_smollm2: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serving(home_with_smollm2, database_url, monkeypatch) as server:
        client = server.client()
        line = b'{"custom_id": "1", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'
        uploaded = await client.files.create(file=("in.jsonl", line), purpose="batch")
        files_dir = server.settings.files_dir
        kept = set(files_dir.iterdir())

        restore = await refuse_writes(database_url)
        try:
            with pytest.raises(openai.APIStatusError) as info:
                await client.files.create(file=("in.jsonl", line), purpose="batch")
            assert info.value.status_code == 503
            assert info.value.response.json()["error"]["code"] == "database_unavailable"
            assert set(files_dir.iterdir()) == kept  # the refused upload's bytes are gone

            async with httpx.AsyncClient(base_url=server.url) as http:
                writes = [
                    await http.post(
                        "/v1/batches",
                        json={
                            "input_file_id": uploaded.id,
                            "endpoint": "/v1/chat/completions",
                            "completion_window": "24h",
                        },
                    ),
                    await http.post("/v1/feedback", json={"run_id": "r", "score": 1}),
                ]
            for response in writes:
                assert response.status_code == 503, response.text
                assert response.json()["error"]["code"] == "database_unavailable"
        finally:
            await restore()


async def _wait_until_drained(server: Server) -> dict:
    """``/readyz`` once the spool is empty again (the drainer wrote what it held)."""
    deadline = time.monotonic() + DRAINED_WITHIN_S
    while True:
        _, body = await readiness(server)
        if body["transcripts_spooled"] == 0 and body["checks"]["database"] == "ok":
            return body
        assert time.monotonic() < deadline, f"the spool was not drained: {body}"
        await asyncio.sleep(POLL_S)
