"""Uploaded files on disk under the data directory, referenced from the database by path and hash.

An upload is copied in blocks to a temporary name, hashed as it goes, renamed into place, and only
then recorded — so a recorded file is always whole. Names on disk are random, not the user's;
the directory is made owner-only (0700) and each file too (0600): they hold users' prompts.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from serving.batch.store import FileStore, StoredFile
from specialists.errors import UnderstudyError

BLOCK_BYTES = 1 << 20
UPLOAD_PURPOSE = "batch"
"""The one purpose uploads may have: batch input."""


class FileTooLarge(UnderstudyError):
    """An upload is larger than ``batch.max_file_bytes``; nothing was kept."""


async def save_upload(
    store: FileStore,
    files_dir: Path,
    source: BinaryIO,
    *,
    filename: str,
    max_bytes: int,
    owner_key_id: str | None,
    expires_after_s: int | None = None,
) -> StoredFile:
    """Copy ``source`` into ``files_dir`` and record it as ``owner_key_id``'s, expiring
    ``expires_after_s`` after now (None: never).

    Raises:
        FileTooLarge: ``source`` holds more than ``max_bytes``.
        StoreError: The database failed (the copy is removed).
    """
    files_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = f"{uuid.uuid4().hex}.jsonl"
    partial = files_dir / f".{name}.partial"
    try:
        size, sha256 = await asyncio.to_thread(_copy, source, partial, max_bytes)
        os.replace(partial, files_dir / name)
        return await store.add_file(
            purpose=UPLOAD_PURPOSE,
            filename=filename,
            size=size,
            sha256=sha256,
            path=name,
            owner_key_id=owner_key_id,
            expires_after_s=expires_after_s,
        )
    except BaseException:
        partial.unlink(missing_ok=True)
        (files_dir / name).unlink(missing_ok=True)
        raise


def _copy(source: BinaryIO, target: Path, max_bytes: int) -> tuple[int, str]:
    """Copy in blocks (in a thread: uploads can be large); returns size and SHA-256."""
    sha = hashlib.sha256()
    size = 0
    with os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
        for block in iter(lambda: source.read(BLOCK_BYTES), b""):
            size += len(block)
            if size > max_bytes:
                raise FileTooLarge(f"the file is larger than {max_bytes} bytes")
            sha.update(block)
            file.write(block)
    return size, sha.hexdigest()


def upload_path(files_dir: Path, stored: StoredFile) -> Path:
    """Where an upload's bytes are."""
    assert stored.path is not None, "output files have no path: render them from the job"
    return files_dir / stored.path


def read_blocks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        yield from iter(lambda: file.read(BLOCK_BYTES), b"")


def remove_upload(files_dir: Path, stored: StoredFile) -> None:
    if stored.path is not None:
        upload_path(files_dir, stored).unlink(missing_ok=True)
