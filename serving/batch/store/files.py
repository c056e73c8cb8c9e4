"""Files of ``/v1/files``: uploads on disk referenced by path and SHA-256, and the output and
error files of batch jobs (no path: rendered from the job's items, see :mod:`~.batches`).

Files and jobs belong to the API key that made them (``owner_key_id``). Every read that takes
``owned_by`` filters in its query: another key's object is not found, exactly like a missing
one, so its existence is never revealed. ``owned_by=None`` sees everyone's (admin keys, and the
operator's CLI).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, insert, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

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
    owner_key_id: str | None
    """The API key it belongs to; None: made with authentication off, or before ownership."""
    created_at: datetime


@dataclass(frozen=True)
class FileDigest:
    """Size and hash of a file's content."""

    bytes: int
    sha256: str


class FileStore(Store):
    """Stored files' records in SQLite or PostgreSQL (their bytes are the caller's business)."""

    async def add_file(
        self,
        *,
        purpose: str,
        filename: str,
        size: int,
        sha256: str,
        path: str | None,
        owner_key_id: str | None,
    ) -> StoredFile:
        """Record a file; for uploads, its bytes must already be on disk at ``path``."""
        stored = StoredFile(
            id=f"file-{uuid.uuid4().hex}",
            purpose=purpose,
            filename=filename,
            bytes=size,
            sha256=sha256,
            path=path,
            owner_key_id=owner_key_id,
            created_at=datetime.now(UTC),
        )
        with wrap_errors("add_file", self._url):
            async with self._writing(), self._engine.begin() as connection:
                await connection.execute(insert(FileRow), [asdict(stored)])
        return stored

    async def get_file(self, file_id: str, *, owned_by: str | None = None) -> StoredFile:
        """The file with this id, if ``owned_by`` (a key id; None: anyone) owns it.

        Raises: FileNotFound, StoreError.
        """
        files = table_of(FileRow)
        query = select(files).where(files.c.id == file_id, owned(files, owned_by))
        with wrap_errors("get_file", self._url):
            async with self._engine.connect() as connection:
                row = (await connection.execute(query)).one_or_none()
        if row is None:
            raise FileNotFound(file_id)
        return StoredFile(**row._mapping)

    async def list_files(
        self,
        *,
        purpose: str | None = None,
        limit: int = 100,
        after: str | None = None,
        owned_by: str | None = None,
    ) -> list[StoredFile]:
        """Files of ``owned_by`` (None: everyone's) newest first; ``after`` is the id of the last
        file of the previous page (one ``owned_by`` does not own is not found)."""
        files = table_of(FileRow)
        with wrap_errors("list_files", self._url):
            async with self._engine.connect() as connection:
                query = await newest_first_page(
                    connection, files, limit=limit, after=after, owned_by=owned_by
                )
                if query is None:
                    raise FileNotFound(after or "")
                if purpose is not None:
                    query = query.where(files.c.purpose == purpose)
                rows = (await connection.execute(query)).all()
        return [StoredFile(**row._mapping) for row in rows]

    async def delete_file(self, file_id: str, *, owned_by: str | None = None) -> StoredFile:
        """Forget a file ``owned_by`` owns (jobs that used it keep their items); the caller
        removes its bytes.

        Raises: FileNotFound, StoreError.
        """
        stored = await self.get_file(file_id, owned_by=owned_by)
        with wrap_errors("delete_file", self._url):
            async with self._writing(), self._engine.begin() as connection:
                await connection.execute(delete(FileRow).where(FileRow.id == file_id))
        return stored


def owned(table: Any, owned_by: str | None) -> ColumnElement[bool]:
    """Rows ``owned_by`` owns; every row when it is None."""
    return true() if owned_by is None else table.c.owner_key_id == owned_by


async def newest_first_page(
    connection: AsyncConnection,
    table: Any,
    *,
    limit: int,
    after: str | None,
    owned_by: str | None,
) -> Select[Any] | None:
    """The query for a page of ``owned_by``'s rows, newest first, after the row whose id is
    ``after`` (keyset pagination); None when ``owned_by`` owns no row with that id."""
    mine = owned(table, owned_by)
    query = (
        select(table).where(mine).order_by(table.c.created_at.desc(), table.c.id.desc())
    ).limit(limit)
    if after is None:
        return query
    created = await connection.scalar(select(table.c.created_at).where(table.c.id == after, mine))
    if created is None:
        return None
    return query.where(
        or_(table.c.created_at < created, and_(table.c.created_at == created, table.c.id < after))
    )
