"""Input checking: every bad line is named, and nothing runs unless told to skip them."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest

from orchestrator.modes import Mode
from orchestrator.request import RequestLimits
from serving.batch.output import ERROR_STATUSES, file_lines
from serving.batch.store import BatchStore
from serving.batch.validation import (
    CHUNK_ITEMS,
    LoadReport,
    ValidationStopped,
    check_body,
    load_requests,
    read_lines,
)
from serving.protocol import ProtocolError, served_models
from serving.settings import BatchSettings
from specialists.catalog import Catalog
from tests.batch.conftest import request_line, validating, write_lines, write_requests

SERVED = served_models(Catalog.default())


def _bad_file(path: Path) -> Path:
    long_prompt = "x" * 3000
    return write_lines(
        path,
        [
            request_line("a", "fine"),  # 1
            "{not json",  # 2
            {"method": "POST", "url": "/v1/chat/completions", "body": {}},  # 3: no custom_id
            request_line("a", "again"),  # 4: duplicate of line 1
            {**request_line("e", "x"), "url": "/v1/embeddings"},  # 5
            request_line("big", long_prompt),  # 6: over max_line_bytes
            {**request_line("s", "x"), "body": {"model": "m", "messages": []}},  # 7
            "",  # 8: blank, skipped
            {  # 9: streaming is not for batches
                **request_line("st", "x"),
                "body": {**request_line("st", "x")["body"], "stream": True},
            },
            request_line("unknown", "x", model="understudy-nonexistent"),  # 10
            request_line("b", "fine too"),  # 11
        ],
    )


async def _load(store: BatchStore, path: Path, *, skip_invalid: bool) -> LoadReport:
    claim = await validating(store)
    with path.open("rb") as stream:
        return await load_requests(
            store,
            claim,
            stream,
            served=SERVED,
            limits=BatchSettings(max_line_bytes=2048),
            request_limits=RequestLimits(),
            skip_invalid=skip_invalid,
        )


async def test_the_report_names_every_bad_line_and_nothing_is_left_to_run(
    store: BatchStore, tmp_path: Path
) -> None:
    report = await _load(store, _bad_file(tmp_path / "in.jsonl"), skip_invalid=False)
    assert [(p.line, p.code) for p in report.problems] == [
        (2, "invalid_json"),
        (3, "missing_custom_id"),
        (5, "unsupported_url"),
        (6, "line_too_long"),
        (7, "invalid_body"),
        (9, "invalid_body"),
        (10, "model_not_found"),
        (4, "duplicate_custom_id"),  # found when its chunk is stored
    ]
    assert "line 1" in report.problems[-1].message
    assert report.problem_count == 8 and not report.ok
    job = report.job
    assert job.status == "failed" and len(job.errors or []) == 8
    assert (await store.progress(job.id)).total == 0  # nothing kept, so nothing can run
    assert await store.claim("w", limit=100, lease_s=30) == []


async def test_skip_invalid_runs_the_rest_and_sends_bad_lines_to_the_error_file(
    store: BatchStore, tmp_path: Path
) -> None:
    report = await _load(store, _bad_file(tmp_path / "in.jsonl"), skip_invalid=True)
    job = report.job
    assert (job.status, report.requests, job.total) == ("in_progress", 2, 10)
    claimed = await store.claim("w", limit=100, lease_s=30)
    assert [(item.line, item.custom_id) for item in claimed] == [(1, "a"), (11, "b")]
    errors = [json.loads(line) async for line in file_lines(store, job.id, ERROR_STATUSES)]
    assert [e["error"]["code"] for e in errors] == [
        "invalid_json",
        "missing_custom_id",
        "duplicate_custom_id",
        "unsupported_url",
        "line_too_long",
        "invalid_body",
        "invalid_body",
        "model_not_found",
    ]
    assert errors[2]["custom_id"] == "a" and errors[2]["error"]["message"].startswith("line 4:")
    assert all(e["response"] is None and e["id"].startswith("batch_req_") for e in errors)


def test_an_overlong_line_is_skipped_without_being_held_in_memory() -> None:
    stream = io.BytesIO(b'{"a": 1}\n' + b"y" * 1_000_000 + b"\n\n" + b'{"b": 2}')
    lines = list(read_lines(stream, max_bytes=100))
    assert lines == [(1, b'{"a": 1}\n'), (2, None), (4, b'{"b": 2}')]


class _StopsAfter(io.BytesIO):
    """A file that sets ``stop`` once ``lines`` lines have been read from it."""

    def __init__(self, data: bytes, stop: asyncio.Event, lines: int) -> None:
        super().__init__(data)
        self.stop, self.lines, self.read_lines = stop, lines, 0

    def readline(self, size: int | None = -1, /) -> bytes:
        self.read_lines += 1
        if self.read_lines == self.lines:
            self.stop.set()  # set from the loader's thread; read by the loop between chunks
        return super().readline(size)


async def test_a_load_shows_its_progress_and_stops_between_chunks_when_told(
    store: BatchStore, tmp_path: Path
) -> None:
    claim = await validating(store)
    data = write_requests(tmp_path / "in.jsonl", 3 * CHUNK_ITEMS).read_bytes()
    stop = asyncio.Event()
    stream = _StopsAfter(data, stop, lines=CHUNK_ITEMS + 10)  # during the second chunk
    with pytest.raises(ValidationStopped):
        await load_requests(
            store,
            claim,
            stream,
            served=SERVED,
            limits=BatchSettings(),
            request_limits=RequestLimits(),
            stop=stop,
        )
    job = await store.get_job(claim.job.id)
    # Two chunks stored (the one under way when told finishes), the third never read.
    assert (job.status, job.total) == ("validating", 2 * CHUNK_ITEMS)
    assert (await store.progress(job.id)).pending == 2 * CHUNK_ITEMS
    assert stream.read_lines <= 2 * CHUNK_ITEMS + 1


def test_a_line_with_tools_is_checked_as_the_chat_api_checks_it() -> None:
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
    body = {
        "model": "understudy-llm",
        "messages": [{"role": "user", "content": "Weather?"}],
        "tools": [tool],
        "tool_choice": "required",
    }
    call = check_body(body, served=SERVED, limits=RequestLimits(), job_mode=Mode.router)
    assert call.options.tools is not None
    assert (call.options.tools.names, call.options.tools.choice) == (["get_weather"], "required")
    with pytest.raises(ProtocolError) as refused:
        check_body(
            {**body, "model": "understudy-slm", "tool_choice": None},
            served=SERVED,
            limits=RequestLimits(),
            job_mode=Mode.router,
        )
    assert (refused.value.param, refused.value.code) == ("tools", "unsupported_parameter")
    with pytest.raises(ProtocolError) as legacy:
        check_body(
            {**body, "functions": [tool["function"]]},
            served=SERVED,
            limits=RequestLimits(),
            job_mode=Mode.router,
        )
    assert legacy.value.param == "functions"
