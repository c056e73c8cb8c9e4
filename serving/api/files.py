"""``/v1/files``: upload batch input, download batch output — OpenAI's Files API, for batches.

Uploads (``purpose=batch``) are kept on disk under the data directory; a finished batch's output
and error files are listed here too, rendered from its items when downloaded. The official
``openai`` client works unchanged: ``client.files.create(file=…, purpose="batch")``,
``client.files.content(batch.output_file_id)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import StreamingResponse

from serving.api.auth import ApiKeyDep, owner_of, visible_to
from serving.batch.files import (
    UPLOAD_PURPOSE,
    FileTooLarge,
    read_blocks,
    remove_upload,
    save_upload,
    upload_path,
)
from serving.batch.output import ERROR_STATUSES, OUTPUT_STATUSES, file_lines
from serving.batch.store import BatchStore, FileNotFound, FileStore, StoredFile
from serving.keys import ApiKey
from serving.protocol import ProtocolError
from serving.settings import Settings

router = APIRouter(prefix="/v1", tags=["files"])

FileIdPath = Annotated[str, Path(min_length=1, max_length=64, description="A file id (file-…).")]


@router.post("/files")
async def create_file(
    request: Request,
    key: ApiKeyDep,
    file: Annotated[UploadFile, File(description="JSONL in OpenAI's Batch format.")],
    purpose: Annotated[str, Form(description="Only 'batch' is supported.")],
) -> dict[str, Any]:
    if purpose != UPLOAD_PURPOSE:
        raise ProtocolError(
            400,
            "unsupported_purpose",
            f"purpose {purpose!r} is not supported; Understudy stores files for 'batch' only",
            param="purpose",
        )
    settings: Settings = request.app.state.settings
    try:
        stored = await save_upload(
            _files(request),
            settings.files_dir,
            file.file,
            filename=file.filename or "upload.jsonl",
            max_bytes=settings.batch.max_file_bytes,
            owner_key_id=owner_of(key),
        )
    except FileTooLarge as exc:
        raise ProtocolError(413, "file_too_large", str(exc), param="file") from exc
    return file_object(stored)


@router.get("/files")
async def list_files(
    request: Request,
    key: ApiKeyDep,
    purpose: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    after: str | None = None,
) -> dict[str, Any]:
    try:
        files = await _files(request).list_files(
            purpose=purpose, limit=limit + 1, after=after, owned_by=visible_to(key)
        )
    except FileNotFound as exc:
        raise ProtocolError(400, "invalid_cursor", str(exc), param="after") from exc
    return page([file_object(stored) for stored in files[:limit]], has_more=len(files) > limit)


@router.get("/files/{file_id}")
async def retrieve_file(file_id: FileIdPath, request: Request, key: ApiKeyDep) -> dict[str, Any]:
    return file_object(await _file(request, file_id, key))


@router.get("/files/{file_id}/content")
async def file_content(file_id: FileIdPath, request: Request, key: ApiKeyDep) -> StreamingResponse:
    stored = await _file(request, file_id, key)
    content: Iterator[bytes] | AsyncIterator[str]
    if stored.path is not None:
        path = upload_path(request.app.state.settings.files_dir, stored)
        if not path.is_file():
            raise ProtocolError(410, "file_gone", f"the bytes of {file_id} are no longer on disk")
        content = read_blocks(path)
    else:
        batches: BatchStore = request.app.state.batches
        job = await batches.job_of_output_file(file_id)
        if job is None:
            raise ProtocolError(410, "file_gone", f"the batch that made {file_id} is gone")
        statuses = OUTPUT_STATUSES if job.output_file_id == file_id else ERROR_STATUSES
        content = file_lines(batches, job.id, statuses)
    return StreamingResponse(content, media_type="application/octet-stream")


@router.delete("/files/{file_id}")
async def delete_file(file_id: FileIdPath, request: Request, key: ApiKeyDep) -> dict[str, Any]:
    try:
        stored = await _files(request).delete_file(file_id, owned_by=visible_to(key))
    except FileNotFound as exc:
        raise ProtocolError(404, "file_not_found", str(exc), param="file_id") from exc
    remove_upload(request.app.state.settings.files_dir, stored)
    return {"id": stored.id, "object": "file", "deleted": True}


def file_object(stored: StoredFile) -> dict[str, Any]:
    """A file in OpenAI's ``file`` shape."""
    return {
        "id": stored.id,
        "object": "file",
        "bytes": stored.bytes,
        "created_at": int(stored.created_at.timestamp()),
        "filename": stored.filename,
        "purpose": stored.purpose,
        "status": "processed",
        "expires_at": None,
        "status_details": None,
    }


def page(data: list[dict[str, Any]], *, has_more: bool) -> dict[str, Any]:
    """OpenAI's cursor page: ask for the next one with ``after=<last_id>``."""
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


async def _file(request: Request, file_id: str, key: ApiKey) -> StoredFile:
    """The file, if ``key`` may see it; another key's is as missing as no file at all."""
    try:
        return await _files(request).get_file(file_id, owned_by=visible_to(key))
    except FileNotFound as exc:
        raise ProtocolError(404, "file_not_found", str(exc), param="file_id") from exc


def _files(request: Request) -> FileStore:
    return request.app.state.files
