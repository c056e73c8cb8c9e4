"""The chat API on 127.0.0.1 for tests: a real uvicorn server over a real database, with a
scripted lead and an API key, for the API, client and console tests to share."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import openai
import pytest
import uvicorn

from orchestrator.testing import ScriptedLead
from serving.api.app import create_app
from serving.keys import KeyStore
from serving.settings import Settings
from tests.helpers.http_server import free_port
from tests.helpers.stores import open_store

SHORT_ANSWERS = json.dumps(
    {
        "math": {"generation": {"max_tokens": 24}, "confidence_threshold": 0.0},
        "email": {"generation": {"max_tokens": 24}},
        "code": {"generation": {"max_tokens": 24}},
    }
)


@dataclass
class Api:
    url: str
    key: str
    lead: ScriptedLead
    settings: Settings

    def client(self, key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key or self.key, max_retries=0)


def start_server(app) -> tuple[uvicorn.Server, threading.Thread, str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "API did not start"
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


@contextmanager
def serving(database_url: str, env: pytest.MonkeyPatch) -> Iterator[Api]:
    """The chat API on 127.0.0.1 with a scripted lead, over ``database_url``, and a key for it;
    ``env`` holds the settings it is started with (UNDERSTUDY_HOME among them) while it runs."""
    lead = ScriptedLead([]).start()
    env.setenv("UNDERSTUDY_DATABASE_URL", database_url)
    env.setenv("UNDERSTUDY_LEAD_BASE_URL", lead.base_url)
    env.setenv("UNDERSTUDY_LEAD_MODEL", "gpt-4o-mini")
    env.setenv("UNDERSTUDY_LEAD_MAX_RETRIES", "0")
    env.setenv("UNDERSTUDY_SPECIALISTS", SHORT_ANSWERS)
    settings = Settings()

    async def make_key() -> str:
        keys = await open_store(KeyStore, settings.database_url)
        _, plaintext = await keys.create("tests", requests_per_minute=1000)
        await keys.database.close()
        return plaintext

    key = asyncio.run(make_key())
    server, thread, url = start_server(create_app(settings))
    try:
        yield Api(url=url, key=key, lead=lead, settings=settings)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        lead.stop()
