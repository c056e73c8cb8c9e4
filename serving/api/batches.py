"""``/v1/batches``: OpenAI's Batch API over Understudy's batch jobs.

``POST /v1/batches`` checks only what is cheap and certain — the endpoint, the window, the
metadata, and that the input file is the caller's, has purpose ``batch`` and is on disk — and
answers at once with the batch ``validating``, as OpenAI's API does. Workers — this server itself
(``batch.api_worker``) or ``understudy worker`` processes — then check every line
(:mod:`serving.batch.validator`): a file with bad lines makes the batch ``failed`` with every bad
line in ``errors`` (nothing runs); otherwise it turns ``in_progress`` and they run it.
Requests choose their mode by ``model`` (``understudy-cascade``, ``understudy-math``, …); other
names (an OpenAI file's ``gpt-4o-mini``) run in ``batch.mode``. Each batch also carries an
``understudy`` block: tokens, cost and savings.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from serving.api.auth import ApiKeyDep, owner_of, visible_to
from serving.api.files import not_found, page
from serving.batch.expiry import ExpiresAfter
from serving.batch.files import UPLOAD_PURPOSE, upload_path
from serving.batch.output import finalize
from serving.batch.store import (
    BatchJob,
    BatchNotFound,
    BatchProgress,
    BatchStore,
    FileNotFound,
    FileStore,
)
from serving.keys import ApiKey
from serving.protocol import ProtocolError
from serving.settings import Settings

router = APIRouter(prefix="/v1", tags=["batches"])

BatchIdPath = Annotated[str, Path(min_length=1, max_length=64, description="A batch id.")]

MAX_METADATA_PAIRS = 16
"""OpenAI's limit on batch metadata."""


class BatchRequest(BaseModel):
    """``POST /v1/batches``."""

    model_config = ConfigDict(extra="forbid")
    input_file_id: str = Field(min_length=1, max_length=64)
    endpoint: Literal["/v1/chat/completions", "/v1/responses"]
    """Every line of the input must address it."""
    completion_window: Literal["24h"] = "24h"
    metadata: dict[str, Annotated[str, Field(max_length=512)]] | None = Field(
        None, max_length=MAX_METADATA_PAIRS
    )
    output_expires_after: ExpiresAfter | None = None
    """When the batch's output and error files expire, counted from their creation."""


@router.post("/batches")
async def create_batch(body: BatchRequest, request: Request, key: ApiKeyDep) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    store = _store(request)
    files: FileStore = request.app.state.files
    try:
        stored = await files.get_file(body.input_file_id, owned_by=visible_to(key))
    except FileNotFound as exc:
        raise not_found(exc, param="input_file_id") from exc
    if stored.purpose != UPLOAD_PURPOSE or stored.path is None:
        raise ProtocolError(
            400,
            "invalid_input_file",
            f"{stored.id} has purpose {stored.purpose!r}; upload input with purpose 'batch'",
            param="input_file_id",
        )
    path = upload_path(settings.files_dir, stored)
    if not path.is_file():
        raise ProtocolError(410, "file_gone", f"the bytes of {stored.id} are no longer on disk")
    job = await store.create_job(
        mode=settings.batch.mode,
        input_name=stored.filename,
        endpoint=body.endpoint,
        input_file_id=stored.id,
        completion_window=body.completion_window,
        metadata=body.metadata,
        owner_key_id=owner_of(key),
        output_expires_after_s=(
            body.output_expires_after.seconds if body.output_expires_after else None
        ),
    )
    return await batch_object(store, job)


@router.get("/batches/{batch_id}")
async def retrieve_batch(batch_id: BatchIdPath, request: Request, key: ApiKeyDep) -> dict[str, Any]:
    store = _store(request)
    return await batch_object(store, await finalize(store, await _job(store, batch_id, key)))


@router.post("/batches/{batch_id}/cancel")
async def cancel_batch(batch_id: BatchIdPath, request: Request, key: ApiKeyDep) -> dict[str, Any]:
    store = _store(request)
    await _job(store, batch_id, key)  # another key's batch is a 404 before anything changes
    return await batch_object(store, await finalize(store, await store.cancel(batch_id)))


@router.get("/batches")
async def list_batches(
    request: Request,
    key: ApiKeyDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: str | None = None,
) -> dict[str, Any]:
    store = _store(request)
    try:
        jobs = await store.list_jobs(limit=limit + 1, after=after, owned_by=visible_to(key))
    except BatchNotFound as exc:
        raise ProtocolError(400, "invalid_cursor", str(exc), param="after") from exc
    shown = jobs[:limit]
    progress = await store.progress_many([job.id for job in shown])
    data = [batch_dict(job, progress[job.id]) for job in shown]
    return page(data, has_more=len(jobs) > limit)


async def batch_object(store: BatchStore, job: BatchJob) -> dict[str, Any]:
    """A job in OpenAI's ``batch`` shape, with an ``understudy`` block."""
    return batch_dict(job, await store.progress(job.id))


def batch_dict(job: BatchJob, progress: BatchProgress) -> dict[str, Any]:
    """:func:`batch_object` of a job whose progress is already read."""
    finished_at = _when(job.finished_at)
    return {
        "id": job.id,
        "object": "batch",
        "endpoint": job.endpoint,
        "errors": _errors(job),
        "input_file_id": job.input_file_id,
        "completion_window": job.completion_window,
        "status": job.status,
        "output_file_id": job.output_file_id,
        "error_file_id": job.error_file_id,
        "created_at": _when(job.created_at),
        "in_progress_at": _when(job.started_at),
        "expires_at": None,
        "finalizing_at": None,
        "completed_at": finished_at if job.status == "completed" else None,
        "failed_at": finished_at if job.status == "failed" else None,
        "expired_at": None,
        "cancelling_at": _when(job.cancel_requested_at),
        "cancelled_at": finished_at if job.status == "cancelled" else None,
        "request_counts": {
            "total": job.total,
            "completed": progress.succeeded,
            "failed": progress.failed,
        },
        "metadata": job.metadata,
        "understudy": {
            "mode": job.mode,
            "pending": progress.pending,
            "running": progress.running,
            "cancelled": progress.cancelled,
            "lead_tokens": progress.lead_tokens,
            "slm_tokens": progress.slm_tokens,
            "cost_usd": progress.cost_usd,
            "lead_only_cost_usd": progress.lead_only_cost_usd,
            "saved_usd": progress.saved_usd,
            "answered_without_lead": progress.answered_without_lead,
        },
    }


def _errors(job: BatchJob) -> dict[str, Any] | None:
    if not job.errors:
        return None
    return {
        "object": "list",
        "data": [
            {
                "code": error["code"],
                "message": error["message"],
                "param": error.get("param"),  # absent in reports made before it was kept
                "line": error["line"],
            }
            for error in job.errors
        ],
    }


def _when(moment: Any) -> int | None:
    return None if moment is None else int(moment.timestamp())


async def _job(store: BatchStore, batch_id: str, key: ApiKey) -> BatchJob:
    """The job, if ``key`` may see it; another key's is as missing as no job at all."""
    try:
        return await store.get_job(batch_id, owned_by=visible_to(key))
    except BatchNotFound as exc:
        raise ProtocolError(404, "batch_not_found", str(exc), param="batch_id") from exc


def _store(request: Request) -> BatchStore:
    return request.app.state.batches
