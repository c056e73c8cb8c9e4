"""Files of ``/v1/files``: uploads on disk referenced by path and SHA-256, and the output and
error files of batch jobs (no path: rendered from the job's items, see :mod:`~.batches`)."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select

from database.engine import Store, wrap_errors
from database.tables import FileRow, table_of
from serving.batch.store.errors import FileNotFound


@dataclass(frozen=True)
class StoredFile:
    """A file known to ``/v1/files``: an upload on disk, or a job's rendered output."""

    id: str
    purpose: str
    filename: str
    bytes: int
    sha256: str
    path: str | None
    """Relative to the files directory; None for output and error files."""
    created_at: datetime


@dataclass(frozen=True)
class FileDigest:
    """Size and hash of a file's content."""

    bytes: int
    sha256: str


class FileStore(Store):
    """Stored files' records in SQLite or PostgreSQL (their bytes are the caller's business)."""

    async def add_file(
        self, *, purpose: str, filename: str, size: int, sha256: str, path: str | None
    ) -> StoredFile:
        """Record a file; for uploads, its bytes must already be on disk at ``path``."""
        stored = StoredFile(
            id=f"file-{uuid.uuid4().hex}",
            purpose=purpose,
            filename=filename,
            bytes=size,
            sha256=sha256,
            path=path,
            created_at=datetime.now(UTC),
        )
        with wrap_errors("add_file", self._url):
            async with self._writing(), self._engine.begin() as connection:
                await connection.execute(insert(FileRow), [asdict(stored)])
        return stored

    async def get_file(self, file_id: str) -> StoredFile:
        """Raises: FileNotFound, StoreError."""
        with wrap_errors("get_file", self._url):
            async with self._engine.connect() as connection:
                row = (
                    await connection.execute(select(FileRow).where(FileRow.id == file_id))
                ).one_or_none()
        if row is None:
            raise FileNotFound(file_id)
        return StoredFile(**row._mapping)

    async def list_files(
        self, *, purpose: str | None = None, limit: int = 100, after: str | None = None
    ) -> list[StoredFile]:
        """Files newest first; ``after`` is the id of the last file of the previous page."""
        files = table_of(FileRow)
        query = select(files).order_by(files.c.created_at.desc(), files.c.id.desc()).limit(limit)
        if purpose is not None:
            query = query.where(files.c.purpose == purpose)
        with wrap_errors("list_files", self._url):
            async with self._engine.connect() as connection:
                if after is not None:
                    created = await connection.scalar(
                        select(files.c.created_at).where(files.c.id == after)
                    )
                    if created is None:
                        raise FileNotFound(after)
                    query = query.where(newest_first_after(files, (created, after)))
                rows = (await connection.execute(query)).all()
        return [StoredFile(**row._mapping) for row in rows]

    async def delete_file(self, file_id: str) -> StoredFile:
        """Forget a file (jobs that used it keep their items); the caller removes its bytes.

        Raises: FileNotFound, StoreError.
        """
        stored = await self.get_file(file_id)
        with wrap_errors("delete_file", self._url):
            async with self._writing(), self._engine.begin() as connection:
                await connection.execute(delete(FileRow).where(FileRow.id == file_id))
        return stored


def newest_first_after(table: Any, cursor: tuple[datetime, str]) -> Any:
    """Rows after ``cursor`` in newest-first order (keyset pagination)."""
    created, row_id = cursor
    return or_(
        table.c.created_at < created, and_(table.c.created_at == created, table.c.id < row_id)
    )
