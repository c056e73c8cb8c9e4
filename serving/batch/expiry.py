"""Files that expire: the ``expires_after`` callers may ask for, and the sweeper that deletes
what expired.

An upload made with ``files.create(expires_after=…)``, and the output and error files of a batch
created with ``output_expires_after``, disappear at their ``expires_at``: from then on the file
store answers :class:`~serving.batch.store.FileExpired` for them (a 404 that says so) and lists
them no more. The sweeper then deletes their bytes — an upload's file on disk, an output file's
lines in the job's items — and marks them purged; the record stays, so that asking for the file
still says it expired. An upload that is the input of a batch still being validated is left
until validation is done: a batch keeps whatever its input was when it was created.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from database import StoreError
from serving.batch.files import remove_upload
from serving.batch.output import ERROR_STATUSES, OUTPUT_STATUSES
from serving.batch.store import BatchStore, FileStore

logger = logging.getLogger(__name__)

MIN_EXPIRES_AFTER_S = 3600
"""OpenAI's bounds on ``expires_after.seconds``: one hour …"""
MAX_EXPIRES_AFTER_S = 2_592_000
"""… to thirty days."""


class ExpiresAfter(BaseModel):
    """OpenAI's ``expires_after`` (files) and ``output_expires_after`` (batches)."""

    model_config = ConfigDict(extra="forbid")

    anchor: Literal["created_at"]
    """What the expiry counts from: the file's creation, the only anchor OpenAI has."""
    seconds: int = Field(ge=MIN_EXPIRES_AFTER_S, le=MAX_EXPIRES_AFTER_S)


async def sweep_expired(files: FileStore, batches: BatchStore, files_dir: Path) -> int:
    """Delete the bytes of every file expired by now; returns how many files were purged.

    Raises:
        StoreError: The database failed (what was deleted before is swept again next time).
    """
    now = datetime.now(UTC)
    expired = await files.expired_files(now)
    for stored in expired:
        if stored.path is not None:
            remove_upload(files_dir, stored)
        elif (job := await batches.job_of_output_file(stored.id)) is not None:
            statuses = OUTPUT_STATUSES if job.output_file_id == stored.id else ERROR_STATUSES
            await batches.forget_outputs(job.id, statuses)
    await files.mark_purged([stored.id for stored in expired], now)
    if expired:
        logger.info("deleted the bytes of %d expired files", len(expired))
    return len(expired)


@asynccontextmanager
async def expiry_sweeper(
    files: FileStore, batches: BatchStore, files_dir: Path, *, every_s: float
) -> AsyncIterator[None]:
    """Sweep every ``every_s`` seconds while the context is open; leaving it stops the sweeper
    at once (a sweep under way finishes its current database call)."""
    stop = asyncio.Event()
    task = asyncio.create_task(_sweep_until(stop, files, batches, files_dir, every_s))
    try:
        yield
    finally:
        stop.set()
        await task


async def _sweep_until(
    stop: asyncio.Event, files: FileStore, batches: BatchStore, files_dir: Path, every_s: float
) -> None:
    while not stop.is_set():
        try:
            await sweep_expired(files, batches, files_dir)
        except StoreError as exc:  # the database is away: the next sweep catches up
            logger.warning("sweeping expired files failed: %s", exc)
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
