"""`/v1/files` and `/v1/batches` as OpenAI's own client uses them, against a real server whose
embedded worker validates and runs the batches; the lead is scripted."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai.types.responses import Response

from tests.batch.conftest import Server, batch_server, request_line, write_lines, write_requests


@pytest.fixture
def server(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    with batch_server(database_url, monkeypatch) as running:
        yield running


def _wait(client: openai.OpenAI, batch_id: str, statuses: set[str]):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 120
    while (batch := client.batches.retrieve(batch_id)).status not in statuses:
        assert time.monotonic() < deadline, batch
        time.sleep(0.1)
    return batch


def test_an_openai_client_uploads_runs_and_downloads_a_batch(
    server: Server, tmp_path: Path
) -> None:
    client = server.client
    path = write_requests(tmp_path / "requests.jsonl", 4)
    with path.open("rb") as file:
        uploaded = client.files.create(file=file, purpose="batch")
    assert (uploaded.bytes, uploaded.purpose, uploaded.filename) == (
        path.stat().st_size,
        "batch",
        "requests.jsonl",
    )
    assert client.files.content(uploaded.id).content == path.read_bytes()

    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"team": "tests"},
    )
    assert batch.status == "validating" and batch.request_counts.total == 0  # a worker checks it
    batch = _wait(client, batch.id, {"completed"})
    assert batch.request_counts.total == 4 and batch.in_progress_at is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (4, 0)
    assert batch.metadata == {"team": "tests"} and batch.error_file_id is None
    assert batch.completed_at is not None and batch.model_extra["understudy"]["lead_tokens"] == 100

    output = client.files.retrieve(batch.output_file_id)
    content = client.files.content(batch.output_file_id).content
    assert output.bytes == len(content) and output.purpose == "batch_output"
    lines = [json.loads(line) for line in content.decode().splitlines()]
    assert [line["custom_id"] for line in lines] == [f"req-{i}" for i in range(4)]
    body = lines[0]["response"]["body"]
    assert body["choices"][0]["message"]["content"] == "ok"
    routing = lines[0]["understudy"]
    assert routing["mode"] == "cascade" and routing["route"].startswith("cascade:")  # batch.mode

    assert batch.id in [b.id for b in client.batches.list()]
    assert {uploaded.id, output.id} <= {f.id for f in client.files.list()}
    assert client.files.delete(uploaded.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)


def test_a_file_with_bad_lines_makes_a_failed_batch_that_names_them(
    server: Server, tmp_path: Path
) -> None:
    path = write_lines(
        tmp_path / "bad.jsonl", [request_line("a", "fine"), "nope", request_line("a", "again")]
    )
    with path.open("rb") as file:
        uploaded = server.client.files.create(file=file, purpose="batch")
    batch = server.client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "validating"
    batch = _wait(server.client, batch.id, {"failed", "in_progress", "completed"})
    assert batch.status == "failed" and batch.failed_at is not None
    assert [(e.line, e.code) for e in batch.errors.data] == [
        (2, "invalid_json"),
        (3, "duplicate_custom_id"),
    ]
    assert batch.request_counts.total == 0
    assert server.lead.requests == []


def test_cancelling_stops_what_has_not_started(server: Server, tmp_path: Path) -> None:
    client = server.client
    with write_requests(tmp_path / "in.jsonl", 6).open("rb") as file:
        uploaded = client.files.create(file=file, purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    _wait(client, batch.id, {"in_progress"})  # validated: cancelling stops a running batch
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in {"cancelling", "cancelled"}
    batch = _wait(client, batch.id, {"cancelled"})
    cancelled = batch.model_extra["understudy"]["cancelled"]
    assert batch.request_counts.completed + cancelled == 6 and cancelled >= 3
    errors = client.files.content(batch.error_file_id).content.decode().splitlines()
    assert {json.loads(line)["error"]["code"] for line in errors} == {"batch_cancelled"}


def test_requests_are_refused_in_openai_shape(server: Server, tmp_path: Path) -> None:
    path = write_requests(tmp_path / "in.jsonl", 1)
    with path.open("rb") as file, pytest.raises(openai.BadRequestError, match="purpose"):
        server.client.files.create(file=file, purpose="fine-tune")
    with pytest.raises(openai.NotFoundError):
        server.client.batches.create(
            input_file_id="file-missing", endpoint="/v1/chat/completions", completion_window="24h"
        )
    with pytest.raises(openai.BadRequestError, match="endpoint"):
        server.client.batches.create(
            input_file_id="file-x", endpoint="/v1/embeddings", completion_window="24h"
        )
    with pytest.raises(openai.NotFoundError):
        server.client.batches.retrieve("batch_missing")
    anonymous = openai.OpenAI(base_url=str(server.client.base_url), api_key="us-wrong")
    with pytest.raises(openai.AuthenticationError):
        anonymous.batches.list()


def _responses_line(custom_id: str, **body: object) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/responses",
        "body": {"model": "understudy-llm", "input": "Say ok.", **body},
    }


def test_a_responses_batch_answers_each_line_with_a_response(
    server: Server, tmp_path: Path
) -> None:
    client = server.client
    path = write_lines(
        tmp_path / "responses.jsonl",
        [_responses_line("r0", instructions="Be brief."), _responses_line("r1")],
    )
    with path.open("rb") as file:
        uploaded = client.files.create(file=file, purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/responses", completion_window="24h"
    )
    assert batch.endpoint == "/v1/responses"
    batch = _wait(client, batch.id, {"completed", "failed"})
    assert (batch.request_counts.completed, batch.request_counts.failed) == (2, 0)
    content = client.files.content(batch.output_file_id).content.decode()
    lines = [json.loads(line) for line in content.splitlines()]
    assert [line["custom_id"] for line in lines] == ["r0", "r1"]
    body = Response.model_validate(lines[0]["response"]["body"])
    assert body.output_text == "ok" and body.instructions == "Be brief." and body.store is False
    assert lines[0]["understudy"]["route"] == "lead"
    assert {"role": "system", "content": "Be brief."} in server.lead.requests[0]["messages"]


def test_a_responses_batch_refuses_lines_it_cannot_run_naming_them(
    server: Server, tmp_path: Path
) -> None:
    path = write_lines(
        tmp_path / "mixed.jsonl",
        [
            _responses_line("ok"),
            request_line("chat", "a chat line in a responses batch"),
            _responses_line("prev", previous_response_id="resp_1"),
            _responses_line("hosted", tools=[{"type": "web_search"}]),
        ],
    )
    with path.open("rb") as file:
        uploaded = server.client.files.create(file=file, purpose="batch")
    batch = server.client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/responses", completion_window="24h"
    )
    batch = _wait(server.client, batch.id, {"failed", "completed"})
    assert batch.status == "failed"
    assert [(e.line, e.code, e.param) for e in batch.errors.data] == [
        (2, "unsupported_url", None),
        (3, "invalid_body", "previous_response_id"),
        (4, "invalid_body", "tools"),
    ]
    assert server.lead.requests == []
