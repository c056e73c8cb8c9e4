"""Fixtures for batch tests: a batch store on each backend, a scripted lead, and request files
in OpenAI's Batch format."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
import pytest_asyncio

from database import Database
from orchestrator.testing import ScriptedLead, reply
from serving.api.app import create_app
from serving.batch.store import BatchStore, NewItem, ValidationClaim
from serving.keys import KeyStore
from serving.settings import Settings
from tests.helpers.http_server import serve_app
from tests.helpers.stores import open_store


@pytest_asyncio.fixture
async def store(database_url: str) -> AsyncIterator[BatchStore]:
    """A batch store on an empty database of each backend."""
    opened = await open_store(BatchStore, database_url)
    try:
        yield opened
    finally:
        await opened.database.close()


async def validating(
    store: BatchStore, *, mode: str = "llm", owner_key_id: str | None = None
) -> ValidationClaim:
    """A new job, claimed for validation as a worker claims one."""
    job = await store.create_job(mode=mode, input_name="in.jsonl", owner_key_id=owner_key_id)
    claim = await store.claim_validation("validator", lease_s=30, job_id=job.id)
    assert claim is not None
    return claim


async def loaded_job(
    store: BatchStore,
    items: list[NewItem],
    *,
    mode: str = "llm",
    owner_key_id: str | None = None,
) -> str:
    """A job validated with these items and started, as a validator leaves it."""
    claim = await validating(store, mode=mode, owner_key_id=owner_key_id)
    assert await store.add_items(claim, items) == []
    job = await store.start_job(claim)
    assert (job.status, job.total) == ("in_progress", len(items))
    return job.id


def request_line(custom_id: str, prompt: str, *, model: str = "gpt-4o-mini") -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": prompt}]},
    }


def write_lines(path: Path, lines: Iterable[dict[str, Any] | str]) -> Path:
    """A JSONL file; strings are written as they are (for broken lines)."""
    with path.open("w", encoding="utf-8") as file:
        for line in lines:
            file.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return path


def write_requests(path: Path, count: int) -> Path:
    return write_lines(path, (request_line(f"req-{i}", f"Say ok ({i})") for i in range(count)))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def lead() -> Iterator[ScriptedLead]:
    """A lead that answers "ok" (20 + 5 tokens) to every request."""
    with ScriptedLead(
        [reply("ok", prompt_tokens=20, completion_tokens=5)], repeat_last=True, model="gpt-4o-mini"
    ) as scripted:
        yield scripted


@dataclass
class Server:
    """A running API server, and what reaches it."""

    client: openai.OpenAI
    lead: ScriptedLead
    settings: Settings
    """The server's settings: its database and files directory."""
    base_url: str
    key: str


@contextmanager
def batch_server(
    database_url: str, monkeypatch: pytest.MonkeyPatch, *, api_worker: bool = True
) -> Iterator[Server]:
    """A real API server on ``database_url`` with a scripted lead (answers "ok" after 0.2 s);
    ``api_worker``: whether the server validates and runs batches itself."""
    lead = ScriptedLead(
        [reply("ok", prompt_tokens=20, completion_tokens=5, delay_s=0.2)],
        repeat_last=True,
        model="gpt-4o-mini",
    ).start()
    for name, value in {
        "DATABASE_URL": database_url,
        "LEAD_BASE_URL": lead.base_url,
        "LEAD_MODEL": "gpt-4o-mini",
        "SLM_BACKEND": "vllm",
        "SLM_BASE_URL": "http://127.0.0.1:9/v1",
        "BATCH_POLL_S": "0.1",
        "BATCH_API_WORKER": str(api_worker).lower(),
        "BATCH_API_WORKER_CONCURRENCY": "1",
    }.items():
        monkeypatch.setenv(f"UNDERSTUDY_{name}", value)
    settings = Settings()

    async def make_key() -> str:
        async with await Database.open(settings.database_url) as keys_database:
            keys = KeyStore(keys_database)
            return (await keys.create("batch-tests", requests_per_minute=10_000))[1]

    key = asyncio.run(make_key())
    try:
        with serve_app(create_app(settings)) as url:
            client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
            yield Server(client, lead, settings, f"{url}/v1", key)
    finally:
        lead.stop()
