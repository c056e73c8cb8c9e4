"""Validating jobs: claimed by one worker under a lease, loaded in checkpoints, then started or
failed exactly once.

``POST /v1/batches`` only creates a job in ``validating``; checking its input file is a worker's
job, off the request path. A worker claims the oldest job nobody validates (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, the single writer on SQLite), and every checkpoint of its load — a chunk
of items stored — renews the lease and first checks, in the same transaction, that the job is
still its own: still ``validating`` and under the same claim. The check is an ``UPDATE`` of the
job's row, so a cancel (which updates that row too) and a checkpoint never interleave.

A validator that dies stops renewing; once its lease expires, the next claim deletes what it
had stored and loads the file again from the first line — the load is keyed by job and line
(and ``custom_id``), so starting over is the one way to a report that names every bad line. A
validator that lost its claim gets :class:`~.errors.ValidationLost` at its next write and so can
never start, fail or add to a job that is no longer its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from database.engine import Database, Store, wrap_errors
from database.tables import BatchItemRow, BatchJobRow, table_of
from serving.batch.store.errors import ValidationLost
from serving.batch.store.records import CHAT_ENDPOINT, BatchJob, NewItem, job_from_row

_JOBS = table_of(BatchJobRow)
_ITEMS = table_of(BatchItemRow)


@dataclass(frozen=True)
class ValidationClaim:
    """A ``validating`` job held by one validator: what it may write under."""

    job: BatchJob
    validator_id: str
    claims: int
    """The job's claim count when it was claimed; a later claim makes this one lost."""
    lease_s: float
    """How long each checkpoint keeps the job with this validator."""


class ValidationStore(Store):
    """Creating jobs and loading their input, on the process's :class:`Database`.

    Every method is a short transaction of its own.
    """

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self._insert = postgresql.insert if database.dialect == "postgresql" else sqlite.insert

    async def create_job(
        self,
        *,
        mode: str,
        input_name: str,
        endpoint: str = CHAT_ENDPOINT,
        input_file_id: str | None = None,
        completion_window: str = "24h",
        metadata: dict[str, Any] | None = None,
        owner_key_id: str | None = None,
        output_expires_after_s: int | None = None,
        held_by: tuple[str, float] | None = None,
    ) -> BatchJob:
        """A new job in ``validating``, whose lines address ``endpoint``: the next validator
        claims it; no worker runs it before. Its output and error files expire
        ``output_expires_after_s`` after they are made (None: never). ``held_by`` (a validator
        id and a lease in seconds) creates it already held by that validator, so no other can
        claim it before the creator does (the CLI, which validates inline).

        Raises:
            StoreError: The database failed (an unknown ``input_file_id`` included).
        """
        created_at = datetime.now(UTC)
        values = {
            "id": f"batch_{uuid.uuid4().hex}",
            "status": "validating",
            "endpoint": endpoint,
            "mode": mode,
            "input_name": input_name,
            "input_file_id": input_file_id,
            "output_file_id": None,
            "error_file_id": None,
            "completion_window": completion_window,
            "metadata": metadata,
            "errors": None,
            "total": 0,
            "owner_key_id": owner_key_id,
            "output_expires_after_s": output_expires_after_s,
            "created_at": created_at,
            "started_at": None,
            "cancel_requested_at": None,
            "finished_at": None,
        }
        if held_by is not None:
            validator_id, lease_s = held_by
            values["validator_id"] = validator_id
            values["validation_lease_expires_at"] = created_at + timedelta(seconds=lease_s)
        with wrap_errors("create_batch", self._url):
            async with self._writing(), self._engine.begin() as connection:
                await connection.execute(insert(_JOBS), values)
        return job_from_row(values)

    async def claim_validation(
        self,
        validator_id: str,
        *,
        lease_s: float,
        job_id: str | None = None,
        skip: Collection[str] = (),
    ) -> ValidationClaim | None:
        """The oldest ``validating`` job nobody holds (or whose validator's lease expired), now
        held by ``validator_id``, with anything an earlier claim stored deleted; None if none.

        ``job_id`` restricts the claim to one job, which may be one ``validator_id`` already
        holds (created so); ``skip`` passes over jobs this validator
        cannot load (their input is on another machine).

        Raises:
            StoreError: The database failed.
        """
        now = datetime.now(UTC)
        claimable = [_JOBS.c.validator_id.is_(None), _JOBS.c.validation_lease_expires_at < now]
        if job_id is not None:
            # The creator taking up the job it made already held (``create_job``'s ``held_by``).
            # Never without ``job_id``: a validator's loop must not re-claim the job that
            # another of its own tasks is validating.
            claimable.append(_JOBS.c.validator_id == validator_id)
        free = and_(_JOBS.c.status == "validating", or_(*claimable))
        pick = select(_JOBS.c.id).where(free).order_by(_JOBS.c.created_at, _JOBS.c.id).limit(1)
        if job_id is not None:
            pick = pick.where(_JOBS.c.id == job_id)
        if skip:
            pick = pick.where(_JOBS.c.id.not_in(list(skip)))
        with wrap_errors("claim_batch_validation", self._url):
            async with self._engine.connect() as connection:  # idle workers only read
                if await connection.scalar(pick) is None:
                    return None
            async with self._write_transaction() as connection:
                picked = await connection.scalar(pick.with_for_update(skip_locked=True))
                if picked is None:  # another validator was faster
                    return None
                row = (
                    await connection.execute(
                        update(_JOBS)
                        .where(_JOBS.c.id == picked)
                        .values(
                            validator_id=validator_id,
                            validation_lease_expires_at=now + timedelta(seconds=lease_s),
                            validation_claims=_JOBS.c.validation_claims + 1,
                            total=0,
                        )
                        .returning(_JOBS)
                    )
                ).one()
                await connection.execute(delete(_ITEMS).where(_ITEMS.c.job_id == picked))
        values = row._mapping
        return ValidationClaim(
            job_from_row(values), validator_id, values["validation_claims"], lease_s
        )

    async def add_items(self, claim: ValidationClaim, items: Sequence[NewItem]) -> list[int]:
        """A checkpoint: store a chunk of items (none: only renew the lease) and count them in
        the job's total; returns the lines whose ``custom_id`` an earlier line already has
        (those are not stored).

        Raises:
            ValidationLost: The claim no longer holds; nothing was stored.
            StoreError: The database failed.
        """
        job_id = claim.job.id
        valid = [_item_values(job_id, item) for item in items if item.output is None]
        invalid = [_item_values(job_id, item) for item in items if item.output is not None]
        statement = (
            self._insert(_ITEMS)
            .on_conflict_do_nothing(index_elements=[_ITEMS.c.job_id, _ITEMS.c.custom_id])
            .returning(_ITEMS.c.line)
        )
        with wrap_errors("add_batch_items", self._url):
            async with self._writing(), self._engine.begin() as connection:
                await _hold(connection, claim)
                stored: set[int] = set()
                if valid:
                    stored = set((await connection.execute(statement, valid)).scalars())
                if invalid:
                    await connection.execute(insert(_ITEMS), invalid)
                if stored or invalid:
                    await connection.execute(
                        update(_JOBS)
                        .where(_JOBS.c.id == job_id)
                        .values(total=_JOBS.c.total + len(stored) + len(invalid))
                    )
        return sorted(row["line"] for row in valid if row["line"] not in stored)

    async def line_of(self, job_id: str, custom_id: str) -> int | None:
        """The line that holds ``custom_id`` in a job, if any."""
        query = select(_ITEMS.c.line).where(
            _ITEMS.c.job_id == job_id, _ITEMS.c.custom_id == custom_id
        )
        with wrap_errors("get_batch_item", self._url):
            async with self._engine.connect() as connection:
                return await connection.scalar(query)

    async def start_job(self, claim: ValidationClaim) -> BatchJob:
        """Hand a validated job to the workers: ``in_progress``, or ``completed`` at once when
        nothing is left to run (every line was invalid and skipped).

        Raises:
            ValidationLost: The claim no longer holds; the job was not started.
            StoreError: The database failed.
        """
        now = datetime.now(UTC)
        runnable = (
            select(_ITEMS.c.job_id)
            .where(_ITEMS.c.job_id == claim.job.id, _ITEMS.c.status == "pending")
            .exists()
        )
        with wrap_errors("start_batch", self._url):
            async with self._writing(), self._engine.begin() as connection:
                return await _end(
                    connection,
                    claim,
                    status=case((runnable, "in_progress"), else_="completed"),
                    started_at=now,
                    finished_at=case((runnable, None), else_=now),
                )

    async def fail_job(self, claim: ValidationClaim, errors: list[dict[str, Any]]) -> BatchJob:
        """End a job whose input was invalid: its items are deleted, nothing ran.

        Raises:
            ValidationLost: The claim no longer holds; the job was not failed.
            StoreError: The database failed.
        """
        with wrap_errors("fail_batch", self._url):
            async with self._writing(), self._engine.begin() as connection:
                await connection.execute(delete(_ITEMS).where(_ITEMS.c.job_id == claim.job.id))
                return await _end(
                    connection,
                    claim,
                    status="failed",
                    errors=errors,
                    total=0,
                    finished_at=datetime.now(UTC),
                )

    async def release_validation(self, claim: ValidationClaim) -> None:
        """Hand a validation back (the validator is stopping): the next claim starts it over at
        once instead of waiting out the lease. Nothing happens if the claim was lost already."""
        with wrap_errors("release_batch_validation", self._url):
            async with self._writing(), self._engine.begin() as connection:
                await connection.execute(
                    update(_JOBS)
                    .where(_held(claim))
                    .values(validator_id=None, validation_lease_expires_at=None)
                )


def _held(claim: ValidationClaim) -> Any:
    """The job is still validating under ``claim``."""
    return and_(
        _JOBS.c.id == claim.job.id,
        _JOBS.c.status == "validating",
        _JOBS.c.validation_claims == claim.claims,
    )


async def _hold(connection: AsyncConnection, claim: ValidationClaim) -> None:
    """Renew the claim's lease, locking the job's row for the rest of the transaction.

    Raises:
        ValidationLost: The claim no longer holds.
    """
    renewed = await connection.execute(
        update(_JOBS)
        .where(_held(claim))
        .values(validation_lease_expires_at=datetime.now(UTC) + timedelta(seconds=claim.lease_s))
    )
    if not renewed.rowcount:
        raise ValidationLost(claim.job.id)


async def _end(connection: AsyncConnection, claim: ValidationClaim, **values: Any) -> BatchJob:
    """Move a job out of ``validating`` under ``claim``.

    Raises:
        ValidationLost: The claim no longer holds.
    """
    row = (
        await connection.execute(
            update(_JOBS)
            .where(_held(claim))
            .values(validation_lease_expires_at=None, **values)
            .returning(_JOBS)
        )
    ).one_or_none()
    if row is None:
        raise ValidationLost(claim.job.id)
    return job_from_row(row._mapping)


def _item_values(job_id: str, item: NewItem) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "line": item.line,
        "custom_id": item.custom_id if item.output is None else None,
        "body": item.body,
        "status": "pending" if item.output is None else "failed",
        "claims": 0,
        "worker_id": None,
        "lease_expires_at": None,
        "run_id": None,
        "output": item.output,
        "lead_tokens": 0,
        "slm_tokens": 0,
        "cost_usd": 0.0,
        "lead_only_cost_usd": 0.0,
        "finished_at": None if item.output is None else datetime.now(UTC),
    }
