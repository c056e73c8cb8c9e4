"""Batch output and error lines in OpenAI's format, and the files made of them.

An output line is what OpenAI's Batch API writes, plus Understudy's routing metadata::

    {"id": "batch_req_…", "custom_id": "q1",
     "response": {"status_code": 200, "request_id": "<run id>", "body": <chat.completion>},
     "error": null,
     "understudy": {"route": "cascade:accepted:math", "cost_usd": …, "lead_tokens": 0, …}}

The body is exactly what ``POST /v1/chat/completions`` (or ``/v1/responses``, for a job on that
endpoint) would have answered (the shapes are the
OpenAI protocol's, :mod:`serving.protocol`). Error lines carry ``error: {"code", "message"}``,
and a ``response`` when the request came to run: the HTTP status and the OpenAI error body the
chat API would have answered. Lines are stored as text when an item finishes and files are rendered
from them in input order, so a file reads the same every time it is rendered.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from orchestrator.outcome import RunResult
from serving.batch.store import BatchJob, BatchStore, ClaimedItem, FileDigest
from serving.protocol import ChatCall, ProtocolError, completion_body, understudy_block
from serving.protocol.responses_api import ResponsesCall
from serving.protocol.responses_output import response_object
from specialists.errors import UnderstudyError

OUTPUT_STATUSES = ("succeeded",)
"""Items whose lines make the output file."""
ERROR_STATUSES = ("failed", "cancelled")
"""Items whose lines make the error file."""
CANCELLED = "batch_cancelled"


def request_id(job_id: str, line: int) -> str:
    """The line's ``id`` in output files: stable across renders, attempts and workers."""
    return f"batch_req_{uuid.uuid5(uuid.NAMESPACE_URL, f'{job_id}/{line}').hex}"


def routing_block(result: RunResult) -> dict[str, Any]:
    """The ``understudy`` block of a line: the chat API's, plus the tokens on each side."""
    return {
        **understudy_block(result),
        "lead_tokens": result.lead_tokens,
        "slm_tokens": result.slm_tokens,
    }


def answer_body(
    call: ChatCall | ResponsesCall, result: RunResult, *, created: int
) -> dict[str, Any]:
    """What the line's endpoint answers: a ``chat.completion``, or a Responses ``response``."""
    if isinstance(call, ResponsesCall):
        return response_object(call, result.run_id, created, result=result)
    return completion_body(result, call.model, created=created)


def success_line(item: ClaimedItem, result: RunResult, body: dict[str, Any]) -> str:
    """The output line of an answered request; ``body`` is :func:`answer_body`'s."""
    return _line(
        {
            "id": request_id(item.job_id, item.line),
            "custom_id": item.custom_id,
            "response": {
                "status_code": 200,
                "request_id": result.run_id,
                "body": body,
            },
            "error": None,
            "understudy": routing_block(result),
        }
    )


def failure_line(item: ClaimedItem, error: ProtocolError, result: RunResult | None) -> str:
    """The error line of a request that ran without an answer (``result``), or was refused
    when it came to run."""
    return _line(
        {
            "id": request_id(item.job_id, item.line),
            "custom_id": item.custom_id,
            "response": {
                "status_code": error.status_code,
                "request_id": result.run_id if result else None,
                "body": error.body(),
            },
            "error": {"code": error.code, "message": error.message},
            **({"understudy": routing_block(result)} if result else {}),
        }
    )


def invalid_line(job_id: str, line: int, custom_id: str | None, code: str, message: str) -> str:
    """The error line of an input line that failed validation (and was skipped)."""
    return _line(
        {
            "id": request_id(job_id, line),
            "custom_id": custom_id,
            "response": None,
            "error": {"code": code, "message": f"line {line}: {message}"},
        }
    )


def cancelled_line(job_id: str, line: int, custom_id: str | None) -> str:
    return _line(
        {
            "id": request_id(job_id, line),
            "custom_id": custom_id,
            "response": None,
            "error": {"code": CANCELLED, "message": "the batch was cancelled before this ran"},
        }
    )


class OutputExpired(UnderstudyError):
    """The job's output or error file expired (``output_expires_after``) and its lines were
    deleted: there is nothing left to render.

    Args:
        job_id: The job whose lines were asked for.
    """

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"the output of {job_id} expired and was deleted")


async def file_lines(
    store: BatchStore, job_id: str, statuses: tuple[str, ...]
) -> AsyncIterator[str]:
    """The lines (newline-terminated) of a job's output or error file, in input order.

    Raises:
        OutputExpired: The file expired and its lines are gone.
    """
    async for item in store.outputs(job_id, statuses=statuses):
        if item.output is None and item.status != "cancelled":
            raise OutputExpired(job_id)
        yield (item.output or cancelled_line(job_id, item.line, item.custom_id)) + "\n"


async def write_file(lines: AsyncIterator[str], path: Path) -> int:
    """Write ``lines`` to ``path`` through a temporary file renamed at the end, so a reader
    never sees half a file; returns how many lines were written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    count = 0
    with partial.open("w", encoding="utf-8") as file:
        async for line in lines:
            file.write(line)
            count += 1
    os.replace(partial, path)
    return count


async def digest(lines: AsyncIterator[str]) -> FileDigest | None:
    """Size and SHA-256 of the file ``lines`` make; None when there are none."""
    sha = hashlib.sha256()
    size = 0
    async for line in lines:
        data = line.encode("utf-8")
        sha.update(data)
        size += len(data)
    return FileDigest(size, sha.hexdigest()) if size else None


async def finalize(store: BatchStore, job: BatchJob) -> BatchJob:
    """Give a finished job its output and error files (``/v1/files`` ids), once."""
    if job.status not in ("completed", "cancelled") or job.output_file_id or job.error_file_id:
        return job
    return await store.attach_output_files(
        job.id,
        output=await digest(file_lines(store, job.id, OUTPUT_STATUSES)),
        errors=await digest(file_lines(store, job.id, ERROR_STATUSES)),
    )


def _line(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False)
