"""Files that expire (``expires_after``, ``output_expires_after``), through the real ``openai``
client: their ``expires_at``, the 404 that says they expired, and the sweeper deleting their
bytes. Time is moved by setting a file's ``expires_at`` in the past, never by waiting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openai
import pytest
from sqlalchemy import update

from database import Database
from database.tables import FileRow
from serving.batch.expiry import sweep_expired
from serving.batch.files import upload_path
from serving.batch.output import OUTPUT_STATUSES, OutputExpired, file_lines
from serving.batch.store import BatchStore, FileExpired, FileNotFound, FileStore
from tests.batch.conftest import Server, batch_server, write_requests
from tests.helpers.stores import open_store

HOUR = 3600


@pytest.fixture
def server(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setenv("UNDERSTUDY_BATCH_EXPIRY_SWEEP_S", "0.1")
    with batch_server(database_url, monkeypatch) as running:
        yield running


def _expire(database_url: str, file_id: str) -> None:
    """Move time for one file: it expired a second ago."""

    async def expire() -> None:
        async with await Database.open(database_url) as database, database.engine.begin() as db:
            await db.execute(
                update(FileRow)
                .where(FileRow.id == file_id)
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )

    asyncio.run(expire())


def _until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _assert_expired(error: openai.NotFoundError, file_id: str) -> None:
    body = error.body
    assert isinstance(body, dict)
    assert body["code"] == "file_expired" and body["param"] == "file_id"
    assert file_id in body["message"] and "expired" in body["message"]


def test_an_uploaded_file_expires_and_its_bytes_are_swept(server: Server, tmp_path: Path) -> None:
    client = server.client
    with write_requests(tmp_path / "in.jsonl", 1).open("rb") as file:
        uploaded = client.files.create(
            file=file, purpose="batch", expires_after={"anchor": "created_at", "seconds": HOUR}
        )
    assert uploaded.expires_at == uploaded.created_at + HOUR
    assert client.files.retrieve(uploaded.id).expires_at == uploaded.expires_at
    with write_requests(tmp_path / "kept.jsonl", 1).open("rb") as file:
        kept = client.files.create(file=file, purpose="batch")
    assert kept.expires_at is None

    stored = asyncio.run(_stored(server, uploaded.id))
    path = upload_path(server.settings.files_dir, stored)
    assert path.is_file()
    _expire(server.settings.database_url, uploaded.id)

    for read in (client.files.retrieve, client.files.content, client.files.delete):
        with pytest.raises(openai.NotFoundError) as caught:
            read(uploaded.id)
        _assert_expired(caught.value, uploaded.id)
    listed = {listed.id for listed in client.files.list()}
    assert uploaded.id not in listed and kept.id in listed
    with pytest.raises(openai.NotFoundError) as caught:
        client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "file_expired"

    _until(lambda: not path.exists(), "the server's sweeper never deleted the expired upload")
    with pytest.raises(openai.NotFoundError) as caught:
        client.files.retrieve(uploaded.id)  # still says why, after its bytes are gone
    _assert_expired(caught.value, uploaded.id)
    assert client.files.content(kept.id).content == (tmp_path / "kept.jsonl").read_bytes()


@pytest.mark.parametrize(
    ("form", "param"),
    [
        ({"anchor": "created_at", "seconds": HOUR - 1}, "expires_after.seconds"),
        ({"anchor": "created_at", "seconds": 2_592_001}, "expires_after.seconds"),
        ({"anchor": "last_active_at", "seconds": HOUR}, "expires_after.anchor"),
        ({"seconds": HOUR}, "expires_after.anchor"),
    ],
)
def test_an_invalid_expires_after_is_a_400_naming_the_field(
    server: Server, tmp_path: Path, form: dict[str, object], param: str
) -> None:
    with (
        write_requests(tmp_path / "in.jsonl", 1).open("rb") as file,
        pytest.raises(openai.BadRequestError) as caught,
    ):
        server.client.files.create(file=file, purpose="batch", expires_after=form)  # type: ignore[arg-type]
    body = caught.value.body
    assert isinstance(body, dict) and body["param"] == param and param in body["message"]
    assert server.client.files.list().data == []  # nothing was kept


def test_an_unknown_upload_field_is_refused_by_name(server: Server, tmp_path: Path) -> None:
    with (
        write_requests(tmp_path / "in.jsonl", 1).open("rb") as file,
        pytest.raises(openai.BadRequestError) as caught,
    ):
        server.client.files.create(
            file=file, purpose="batch", extra_body={"expires_after": '{"seconds": 3600}'}
        )
    body = caught.value.body
    assert isinstance(body, dict) and body["param"] == "expires_after"
    assert body["code"] == "unknown_parameter"


def test_a_batch_output_file_expires_as_output_expires_after_says(
    server: Server, tmp_path: Path
) -> None:
    client = server.client
    with write_requests(tmp_path / "in.jsonl", 2).open("rb") as file:
        uploaded = client.files.create(
            file=file, purpose="batch", expires_after={"anchor": "created_at", "seconds": HOUR}
        )
    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        output_expires_after={"anchor": "created_at", "seconds": 2 * HOUR},
    )
    _expire(server.settings.database_url, uploaded.id)  # after the batch was created: it runs
    deadline = time.monotonic() + 120
    while (batch := client.batches.retrieve(batch.id)).status != "completed":
        assert batch.status in {"validating", "in_progress"} and time.monotonic() < deadline, batch
        time.sleep(0.1)
    assert batch.request_counts.completed == 2 and batch.output_file_id is not None

    output = client.files.retrieve(batch.output_file_id)
    assert output.expires_at == output.created_at + 2 * HOUR
    assert len(client.files.content(output.id).content.splitlines()) == 2

    _expire(server.settings.database_url, output.id)
    with pytest.raises(openai.NotFoundError) as caught:
        client.files.content(output.id)
    _assert_expired(caught.value, output.id)
    _until(
        lambda: asyncio.run(_output_lines(server, batch.id)) == [None, None],
        "the sweeper never deleted the expired output file's lines",
    )
    assert client.batches.retrieve(batch.id).request_counts.completed == 2  # counts stay
    with pytest.raises(OutputExpired):  # `understudy batch results` says so, too
        asyncio.run(_render(server, batch.id))


def test_an_invalid_output_expires_after_is_a_400_naming_the_field(
    server: Server, tmp_path: Path
) -> None:
    with write_requests(tmp_path / "in.jsonl", 1).open("rb") as file:
        uploaded = server.client.files.create(file=file, purpose="batch")
    with pytest.raises(openai.BadRequestError) as caught:
        server.client.batches.create(
            input_file_id=uploaded.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            output_expires_after={"anchor": "created_at", "seconds": 60},
        )
    body = caught.value.body
    assert isinstance(body, dict) and body["param"] == "output_expires_after.seconds"


async def test_the_input_of_a_validating_batch_is_not_swept(
    database_url: str, tmp_path: Path
) -> None:
    files = await open_store(FileStore, database_url)
    batches = BatchStore(files.database)
    try:
        stored = await files.add_file(
            purpose="batch",
            filename="in.jsonl",
            size=3,
            sha256="0" * 64,
            path="in.jsonl",
            owner_key_id="alice",
            expires_after_s=HOUR,
        )
        (tmp_path / "in.jsonl").write_bytes(b"{}\n")
        job = await batches.create_job(mode="llm", input_name="in.jsonl", input_file_id=stored.id)
        later = datetime.now(UTC) + timedelta(seconds=HOUR + 1)
        assert await files.expired_files(later) == []  # its validator will read it

        await batches.cancel(job.id)
        assert [found.id for found in await files.expired_files(later)] == [stored.id]
        await _expire_async(files, stored.id)
        with pytest.raises(FileExpired):
            await files.get_file(stored.id, owned_by="alice")
        with pytest.raises(FileNotFound) as caught:  # another key's: not found, not "expired"
            await files.get_file(stored.id, owned_by="bob")
        assert not isinstance(caught.value, FileExpired)
        assert await sweep_expired(files, batches, tmp_path) == 1
        assert not (tmp_path / "in.jsonl").exists()
        assert (await files.get_file(stored.id, expired_ok=True)).purged_at is not None
        assert await sweep_expired(files, batches, tmp_path) == 0  # swept once
    finally:
        await files.database.close()


async def _expire_async(files: FileStore, file_id: str) -> None:
    async with files.database.engine.begin() as db:
        await db.execute(
            update(FileRow)
            .where(FileRow.id == file_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )


async def _stored(server: Server, file_id: str):  # type: ignore[no-untyped-def]
    files = await open_store(FileStore, server.settings.database_url)
    try:
        return await files.get_file(file_id)
    finally:
        await files.database.close()


async def _output_lines(server: Server, job_id: str) -> list[str | None]:
    batches = await open_store(BatchStore, server.settings.database_url)
    try:
        return [item.output async for item in batches.outputs(job_id, statuses=OUTPUT_STATUSES)]
    finally:
        await batches.database.close()


async def _render(server: Server, job_id: str) -> list[str]:
    batches = await open_store(BatchStore, server.settings.database_url)
    try:
        return [line async for line in file_lines(batches, job_id, OUTPUT_STATUSES)]
    finally:
        await batches.database.close()
