"""Files and batches belong to the key that made them: on every `/v1/files` and `/v1/batches`
route another key gets the same 404 as for an id that does not exist, and lists show it only its
own; an admin key sees everyone's. Against a real server, with OpenAI's own client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import openai
import pytest

from database import Database
from orchestrator.testing import ScriptedLead, reply
from serving.api.app import create_app
from serving.api.auth import ANONYMOUS_KEY, owner_of, visible_to
from serving.keys import KeyStore
from serving.settings import Settings
from tests.batch.conftest import write_requests
from tests.helpers.http_server import serve_app

MISSING_FILE = "file-000000000000000000000000"
MISSING_BATCH = "batch_000000000000000000000000"


@dataclass
class Clients:
    alice: openai.OpenAI
    bob: openai.OpenAI
    admin: openai.OpenAI


@pytest.fixture
def clients(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Clients]:
    """A server whose embedded worker runs batches slowly enough to catch one in progress."""
    lead = ScriptedLead([reply("ok", delay_s=0.3)], repeat_last=True, model="gpt-4o-mini").start()
    for name, value in {
        "DATABASE_URL": database_url,
        "LEAD_BASE_URL": lead.base_url,
        "LEAD_MODEL": "gpt-4o-mini",
        "SLM_BACKEND": "vllm",
        "SLM_BASE_URL": "http://127.0.0.1:9/v1",
        "BATCH_MODE": "llm",
        "BATCH_POLL_S": "0.1",
        "BATCH_API_WORKER_CONCURRENCY": "1",
    }.items():
        monkeypatch.setenv(f"UNDERSTUDY_{name}", value)
    settings = Settings()

    async def make_keys() -> list[str]:
        async with await Database.open(settings.database_url) as database:
            keys = KeyStore(database)
            return [
                (await keys.create(name, admin=name == "admin"))[1]
                for name in ("alice", "bob", "admin")
            ]

    alice, bob, admin = asyncio.run(make_keys())
    with serve_app(create_app(settings)) as url:

        def client(key: str) -> openai.OpenAI:
            return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)

        yield Clients(client(alice), client(bob), client(admin))
    lead.stop()


def _upload(client: openai.OpenAI, path: Path) -> str:
    with path.open("rb") as file:
        return client.files.create(file=file, purpose="batch").id


def _create_batch(client: openai.OpenAI, file_id: str) -> Any:
    return client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )


def _not_found(call: Callable[[], object], missing: str, hidden: str) -> dict[str, Any]:
    """The 404 of ``call``, which names ``hidden``, with that id replaced by ``missing``: what a
    caller learns about another key's object must equal what it learns about no object."""
    with pytest.raises(openai.NotFoundError) as caught:
        call()
    body = caught.value.body
    assert isinstance(body, dict)
    body["message"] = body["message"].replace(hidden, missing)
    return body


def _same_404_as_missing(
    attempt: Callable[[str], object], hidden: str, missing: str = MISSING_FILE
) -> None:
    assert _not_found(lambda: attempt(hidden), missing, hidden) == _not_found(
        lambda: attempt(missing), missing, missing
    )


def test_another_key_cannot_reach_a_keys_files_and_batches_on_any_route(
    clients: Clients, tmp_path: Path
) -> None:
    alice, bob, admin = clients.alice, clients.bob, clients.admin
    alice_file = _upload(alice, write_requests(tmp_path / "alice.jsonl", 2))
    done = _create_batch(alice, alice_file)
    deadline = time.monotonic() + 120
    while (done := alice.batches.retrieve(done.id)).status != "completed":
        assert time.monotonic() < deadline, done
        time.sleep(0.1)
    alice_output = done.output_file_id
    running_file = _upload(alice, write_requests(tmp_path / "more.jsonl", 6))
    running = _create_batch(alice, running_file)  # 6 items of 0.3 s: runs while Bob tries
    bob_file = _upload(bob, write_requests(tmp_path / "bob.jsonl", 1))

    for hidden in (alice_file, alice_output):
        _same_404_as_missing(bob.files.retrieve, hidden)
        _same_404_as_missing(lambda file_id: bob.files.content(file_id).content, hidden)
        _same_404_as_missing(bob.files.delete, hidden)
    _same_404_as_missing(lambda file_id: _create_batch(bob, file_id), alice_file)
    _same_404_as_missing(bob.batches.retrieve, running.id, MISSING_BATCH)
    _same_404_as_missing(bob.batches.cancel, running.id, MISSING_BATCH)
    assert alice.batches.retrieve(running.id).cancelling_at is None  # Bob's cancel did nothing
    listings: list[tuple[Callable[..., object], str]] = [
        (bob.files.list, alice_file),
        (bob.batches.list, running.id),
    ]
    for listing, hers in listings:  # her ids are no cursor for him: 400, as an unknown id is
        with pytest.raises(openai.BadRequestError) as refused:
            listing(after=hers)
        assert refused.value.param == "after"

    assert [file.id for file in bob.files.list()] == [bob_file]
    assert list(bob.batches.list()) == []
    alice_files = {alice_file, alice_output, running_file}
    assert {file.id for file in alice.files.list()} == alice_files
    assert {batch.id for batch in alice.batches.list()} == {done.id, running.id}
    assert {file.id for file in admin.files.list()} >= alice_files | {bob_file}
    assert admin.files.content(alice_output).content == alice.files.content(alice_output).content
    assert admin.batches.retrieve(done.id).status == "completed"

    # Pages of one key's objects stay whole and in order when other keys' objects lie between.
    first = bob.files.list(limit=1)
    bob_second = _upload(bob, write_requests(tmp_path / "bob2.jsonl", 1))
    pages = [bob.files.list(limit=1), bob.files.list(limit=1, after=bob_second)]
    assert first.has_more is False
    assert [([f.id for f in page.data], page.has_more) for page in pages] == [
        ([bob_second], True),
        ([bob_file], False),
    ]

    # Alice can still do everything with her own.
    assert alice.batches.cancel(running.id).status in {"cancelling", "cancelled", "completed"}
    assert alice.files.retrieve(alice_output).purpose == "batch_output"
    assert alice.files.delete(running_file).deleted
    with pytest.raises(openai.NotFoundError):
        admin.files.retrieve(running_file)


def test_an_admin_key_reaches_every_keys_objects_and_owns_what_it_makes(
    clients: Clients, tmp_path: Path
) -> None:
    alice, bob, admin = clients.alice, clients.bob, clients.admin
    alice_file = _upload(alice, write_requests(tmp_path / "alice.jsonl", 1))
    assert admin.files.retrieve(alice_file).id == alice_file
    made = _create_batch(admin, alice_file)  # from her file: the batch is the admin's
    assert made.id in {batch.id for batch in admin.batches.list()}
    assert list(alice.batches.list()) == [] and list(bob.batches.list()) == []
    _same_404_as_missing(alice.batches.retrieve, made.id, MISSING_BATCH)
    admin.batches.cancel(made.id)
    assert admin.files.delete(alice_file).deleted
    _same_404_as_missing(alice.files.retrieve, alice_file)  # gone for her too


def test_with_authentication_off_everything_is_everyones() -> None:
    """``UNDERSTUDY_API_AUTH=false``: the anonymous caller owns nothing and sees everything."""
    assert (owner_of(ANONYMOUS_KEY), visible_to(ANONYMOUS_KEY)) == (None, None)
    key = replace(ANONYMOUS_KEY, id="k1", name="someone", admin=False)
    admin = replace(key, admin=True)
    assert (owner_of(key), visible_to(key)) == ("k1", "k1")
    assert (owner_of(admin), visible_to(admin)) == ("k1", None)  # owns what it makes, sees all
