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
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    delete,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from database.engine import Store, wrap_errors
from database.tables import BatchJobRow, FileRow, table_of
from serving.batch.store.errors import FileExpired, FileNotFound


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
    expires_at: datetime | None = None
    """When it disappears; None: never."""
    purged_at: datetime | None = None
    """When the expiry sweeper deleted its bytes (the record stays, to say it expired)."""


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
        expires_after_s: int | None = None,
    ) -> StoredFile:
        """Record a file; for uploads, its bytes must already be on disk at ``path``. It expires
        ``expires_after_s`` after now (None: never)."""
        now = datetime.now(UTC)
        stored = StoredFile(
            id=f"file-{uuid.uuid4().hex}",
            purpose=purpose,
            filename=filename,
            bytes=size,
            sha256=sha256,
            path=path,
            owner_key_id=owner_key_id,
            created_at=now,
            expires_at=expires_at(now, expires_after_s),
        )
        with wrap_errors("add_file", self._url):
            async with self._writing(), self._engine.begin() as connection:
                await connection.execute(insert(FileRow), [asdict(stored)])
        return stored

    async def get_file(
        self, file_id: str, *, owned_by: str | None = None, expired_ok: bool = False
    ) -> StoredFile:
        """The file with this id, if ``owned_by`` (a key id; None: anyone) owns it and it has
        not expired (``expired_ok``: even if it has — a validator reading the input of a batch
        created before its file expired).

        Raises: FileExpired (a FileNotFound), FileNotFound, StoreError.
        """
        files = table_of(FileRow)
        query = select(files).where(files.c.id == file_id, owned(files, owned_by))
        now = datetime.now(UTC)
        with wrap_errors("get_file", self._url):
            async with self._engine.connect() as connection:
                row = (await connection.execute(query)).one_or_none()
        if row is None:
            raise FileNotFound(file_id)
        stored = StoredFile(**row._mapping)
        if stored.expires_at is not None and stored.expires_at <= now and not expired_ok:
            raise FileExpired(file_id, stored.expires_at)
        return stored

    async def list_files(
        self,
        *,
        purpose: str | None = None,
        limit: int = 100,
        after: str | None = None,
        owned_by: str | None = None,
    ) -> list[StoredFile]:
        """Unexpired files of ``owned_by`` (None: everyone's) newest first; ``after`` is the id of
        the last file of the previous page (one ``owned_by`` does not own is not found)."""
        files = table_of(FileRow)
        live = or_(files.c.expires_at.is_(None), files.c.expires_at > datetime.now(UTC))
        with wrap_errors("list_files", self._url):
            async with self._engine.connect() as connection:
                query = await newest_first_page(
                    connection, files, limit=limit, after=after, owned_by=owned_by
                )
                if query is None:
                    raise FileNotFound(after or "")
                query = query.where(live)
                if purpose is not None:
                    query = query.where(files.c.purpose == purpose)
                rows = (await connection.execute(query)).all()
        return [StoredFile(**row._mapping) for row in rows]

    async def expired_files(self, now: datetime, *, limit: int = 1000) -> list[StoredFile]:
        """Files expired by ``now`` whose bytes are not yet purged, oldest expiry first — but
        not the input of a batch still ``validating``: its validator reads it (whatever expires
        after a batch was created, the batch keeps)."""
        files, jobs = table_of(FileRow), table_of(BatchJobRow)
        validating = select(jobs.c.input_file_id).where(
            jobs.c.status == "validating", jobs.c.input_file_id.is_not(None)
        )
        query = (
            select(files)
            .where(
                files.c.expires_at <= now,
                files.c.purged_at.is_(None),
                files.c.id.not_in(validating),
            )
            .order_by(files.c.expires_at)
            .limit(limit)
        )
        with wrap_errors("expired_files", self._url):
            async with self._engine.connect() as connection:
                rows = (await connection.execute(query)).all()
        return [StoredFile(**row._mapping) for row in rows]

    async def mark_purged(self, file_ids: list[str], now: datetime) -> None:
        """Record that the bytes of these expired files are gone."""
        if not file_ids:
            return
        with wrap_errors("mark_purged", self._url):
            async with self._writing(), self._engine.begin() as connection:
                await connection.execute(
                    update(FileRow).where(FileRow.id.in_(file_ids)).values(purged_at=now)
                )

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


def expires_at(created_at: datetime, expires_after_s: int | None) -> datetime | None:
    """When something made at ``created_at`` expires ``expires_after_s`` later (None: never)."""
    return None if expires_after_s is None else created_at + timedelta(seconds=expires_after_s)


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
