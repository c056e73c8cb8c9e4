"""``/v1/files``: upload batch input, download batch output — OpenAI's Files API, for batches.

Uploads (``purpose=batch``) are kept on disk under the data directory; a finished batch's output
and error files are listed here too, rendered from its items when downloaded. A file made with
``expires_after`` (or a batch's ``output_expires_after``) is a 404 ``file_expired`` from its
``expires_at`` on, and its bytes are deleted (:mod:`serving.batch.expiry`). The official
``openai`` client works unchanged: ``client.files.create(file=…, purpose="batch")``,
``client.files.content(batch.output_file_id)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from serving.api.auth import ApiKeyDep, owner_of, visible_to
from serving.batch.expiry import ExpiresAfter
from serving.batch.files import (
    UPLOAD_PURPOSE,
    FileTooLarge,
    read_blocks,
    remove_upload,
    save_upload,
    upload_path,
)
from serving.batch.output import ERROR_STATUSES, OUTPUT_STATUSES, file_lines
from serving.batch.store import BatchStore, FileExpired, FileNotFound, FileStore, StoredFile
from serving.keys import ApiKey
from serving.protocol import ProtocolError, describe_validation_errors
from serving.settings import Settings

router = APIRouter(prefix="/v1", tags=["files"])

_FORM_FIELDS = frozenset({"file", "purpose", "expires_after[anchor]", "expires_after[seconds]"})
"""What an upload's form may hold; anything else is refused by name, never silently ignored."""

FileIdPath = Annotated[str, Path(min_length=1, max_length=64, description="A file id (file-…).")]


@router.post("/files")
async def create_file(
    request: Request,
    key: ApiKeyDep,
    file: Annotated[UploadFile, File(description="JSONL in OpenAI's Batch format.")],
    purpose: Annotated[str, Form(description="Only 'batch' is supported.")],
    anchor: Annotated[
        str | None, Form(alias="expires_after[anchor]", description="'created_at'.")
    ] = None,
    seconds: Annotated[
        str | None, Form(alias="expires_after[seconds]", description="3600 to 2592000.")
    ] = None,
) -> dict[str, Any]:
    if purpose != UPLOAD_PURPOSE:
        raise ProtocolError(
            400,
            "unsupported_purpose",
            f"purpose {purpose!r} is not supported; Understudy stores files for 'batch' only",
            param="purpose",
        )
    unknown = sorted(set((await request.form()).keys()) - _FORM_FIELDS)
    if unknown:
        raise ProtocolError(
            400,
            "unknown_parameter",
            f"unknown parameter(s) {', '.join(map(repr, unknown))}; uploads take "
            f"{', '.join(sorted(_FORM_FIELDS))}",
            param=unknown[0],
        )
    expires_after = _expires_after(anchor, seconds)
    settings: Settings = request.app.state.settings
    try:
        stored = await save_upload(
            _files(request),
            settings.files_dir,
            file.file,
            filename=file.filename or "upload.jsonl",
            max_bytes=settings.batch.max_file_bytes,
            owner_key_id=owner_of(key),
            expires_after_s=expires_after.seconds if expires_after else None,
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
        raise not_found(exc, param="file_id") from exc
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
        "expires_at": int(stored.expires_at.timestamp()) if stored.expires_at else None,
        "status_details": None,
    }


def _expires_after(anchor: str | None, seconds: str | None) -> ExpiresAfter | None:
    """The form's ``expires_after`` (multipart: ``expires_after[anchor]`` and
    ``expires_after[seconds]``), or None when it has neither; a 400 naming what is wrong."""
    if anchor is None and seconds is None:
        return None
    try:
        return ExpiresAfter.model_validate({"anchor": anchor, "seconds": seconds})
    except ValidationError as exc:
        errors = [{**error, "loc": ("expires_after", *error["loc"])} for error in exc.errors()]
        message, param = describe_validation_errors(errors)
        raise ProtocolError(400, "invalid_value", message, param=param) from exc


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
        raise not_found(exc, param="file_id") from exc


def not_found(exc: FileNotFound, *, param: str) -> ProtocolError:
    """The 404 of a file that is not there: ``file_expired`` when it was, and expired."""
    code = "file_expired" if isinstance(exc, FileExpired) else "file_not_found"
    return ProtocolError(404, code, str(exc), param=param)


def _files(request: Request) -> FileStore:
    return request.app.state.files
