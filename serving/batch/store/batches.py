"""Batch jobs as rows: created in chunks, claimed by any number of workers, finished exactly once.

A job is created ``validating`` and its items stored by one validator at a time
(:mod:`~.validations`, whose store this one extends); from ``in_progress`` on, it is this
module's.

A job's requests are ``batch_items`` rows in input order. Workers claim items in small groups —
``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, so workers on many machines never claim the same
row; on SQLite every claim is one ``BEGIN IMMEDIATE`` transaction of the single writer — and hold
them under a lease they renew with :meth:`~.workers.WorkerStore.heartbeat`. A worker that dies
(``kill -9``, a lost machine) stops renewing; once its leases expire, its items are claimed again.

Each claim increments the item's ``claims`` counter, and a result is committed only under the
claim that produced it (:meth:`BatchStore.complete`), so a worker that lost its lease cannot
overwrite the result of the worker that took the item over. Whether a re-claimed item must run
again or already has a transcript is the runner's business (it derives run ids from the item).

Lease times come from the workers' clocks; keep them within a few seconds of each other (NTP) or
raise the lease. Counts and totals are computed from the items, never kept in counters that every
worker would have to update.

A finished job's output and error files (:mod:`~.files`) have no path: they are rendered from
its items whenever they are read, so each result is stored once.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, case, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from database.engine import wrap_errors
from database.tables import BatchItemRow, BatchJobRow, FileRow, table_of
from serving.batch.store.errors import BatchNotFound
from serving.batch.store.files import FileDigest, expires_at, newest_first_page, owned
from serving.batch.store.records import (
    BatchJob,
    BatchProgress,
    ClaimedItem,
    ItemOutput,
    ItemResult,
    job_from_row,
    progress_from_sums,
)
from serving.batch.store.validations import ValidationStore

_JOBS = table_of(BatchJobRow)
_ITEMS = table_of(BatchItemRow)
_OPEN = _JOBS.c.status.in_(("in_progress", "cancelling"))
"""Jobs that finish once their items are done."""


class BatchStore(ValidationStore):
    """Batch jobs and their items in SQLite or PostgreSQL, on the process's :class:`Database`;
    creating and loading jobs is :class:`~.validations.ValidationStore`'s part.

    Every method is a short transaction of its own.
    """

    # ------------------------------------------------------------------------------ jobs

    async def get_job(self, job_id: str, *, owned_by: str | None = None) -> BatchJob:
        """The job with this id, if ``owned_by`` (a key id; None: anyone) owns it.

        Raises: BatchNotFound, StoreError.
        """
        query = select(_JOBS).where(_JOBS.c.id == job_id, owned(_JOBS, owned_by))
        with wrap_errors("get_batch", self._url):
            async with self._engine.connect() as connection:
                row = (await connection.execute(query)).one_or_none()
        if row is None:
            raise BatchNotFound(job_id)
        return job_from_row(row._mapping)

    async def list_jobs(
        self, *, limit: int = 20, after: str | None = None, owned_by: str | None = None
    ) -> list[BatchJob]:
        """Jobs of ``owned_by`` (None: everyone's) newest first; ``after`` is the id of the last
        job of the previous page (one ``owned_by`` does not own is not found)."""
        with wrap_errors("list_batches", self._url):
            async with self._engine.connect() as connection:
                query = await newest_first_page(
                    connection, _JOBS, limit=limit, after=after, owned_by=owned_by
                )
                if query is None:
                    raise BatchNotFound(after or "")
                rows = (await connection.execute(query)).all()
        return [job_from_row(row._mapping) for row in rows]

    async def progress(self, job_id: str) -> BatchProgress:
        """Items by status with their tokens and cost, in one query."""
        return (await self.progress_many([job_id]))[job_id]

    async def progress_many(self, job_ids: Sequence[str]) -> dict[str, BatchProgress]:
        """:meth:`progress` of several jobs in one query (a page of ``GET /v1/batches``)."""
        query = (
            select(
                _ITEMS.c.job_id,
                _ITEMS.c.status,
                func.count(),
                func.coalesce(func.sum(_ITEMS.c.lead_tokens), 0),
                func.coalesce(func.sum(_ITEMS.c.slm_tokens), 0),
                func.coalesce(func.sum(_ITEMS.c.cost_usd), 0.0),
                func.coalesce(func.sum(_ITEMS.c.lead_only_cost_usd), 0.0),
                func.coalesce(func.sum(case((_ITEMS.c.lead_tokens == 0, 1), else_=0)), 0),
            )
            .where(_ITEMS.c.job_id.in_(job_ids))
            .group_by(_ITEMS.c.job_id, _ITEMS.c.status)
        )
        with wrap_errors("batch_progress", self._url):
            async with self._engine.connect() as connection:
                found = (await connection.execute(query)).all()
        by_job: dict[str, dict[str, Sequence[Any]]] = {job_id: {} for job_id in job_ids}
        for job_id, status, *sums in found:
            by_job[job_id][status] = sums
        return {job_id: progress_from_sums(rows) for job_id, rows in by_job.items()}

    async def cancel(self, job_id: str) -> BatchJob:
        """Stop a job: items not yet claimed are cancelled, running ones finish.

        The job is ``cancelling`` until its running items are done (see :meth:`finish_jobs`).
        A job still ``validating`` is ``cancelled`` at once and keeps no items: nothing of it
        ran, and its validator's next checkpoint finds its claim lost. Cancelling a finished
        job changes nothing.

        Raises:
            BatchNotFound: No job has this id.
            StoreError: The database failed.
        """
        now = datetime.now(UTC)
        with wrap_errors("cancel_batch", self._url):
            async with self._writing(), self._engine.begin() as connection:
                validating = await connection.execute(
                    update(_JOBS)
                    .where(_JOBS.c.id == job_id, _JOBS.c.status == "validating")
                    .values(
                        status="cancelled",
                        total=0,
                        cancel_requested_at=now,
                        finished_at=now,
                        validation_lease_expires_at=None,
                    )
                )
                if validating.rowcount:
                    await connection.execute(delete(_ITEMS).where(_ITEMS.c.job_id == job_id))
                else:
                    running = await connection.execute(
                        update(_JOBS)
                        .where(_JOBS.c.id == job_id, _JOBS.c.status == "in_progress")
                        .values(status="cancelling", cancel_requested_at=now)
                    )
                    if running.rowcount:
                        await _cancel_pending(connection, job_id, now)
        await self.finish_jobs(job_id)
        return await self.get_job(job_id)

    async def finish_jobs(self, job_id: str | None = None) -> list[str]:
        """Mark jobs with nothing left to run ``completed`` (or ``cancelled``); returns their ids.

        Also cancels the running items of a cancelling job whose worker stopped (lease expired):
        nobody claims items of a cancelled job, so they would otherwise hold it open forever.
        """
        now = datetime.now(UTC)
        open_jobs = select(_JOBS.c.id).where(_OPEN)
        if job_id is not None:
            open_jobs = open_jobs.where(_JOBS.c.id == job_id)
        unfinished = (
            select(_ITEMS.c.job_id)
            .where(_ITEMS.c.job_id == _JOBS.c.id, _ITEMS.c.status.in_(("pending", "running")))
            .exists()
        )
        with wrap_errors("finish_batches", self._url):
            async with self._engine.connect() as connection:  # idle workers only read
                candidates = (await connection.execute(open_jobs)).scalars().all()
            if not candidates:
                return []
            async with self._write_transaction() as connection:
                await connection.execute(
                    update(_ITEMS)
                    .where(
                        _ITEMS.c.job_id.in_(
                            select(_JOBS.c.id).where(
                                _JOBS.c.id.in_(candidates), _JOBS.c.status == "cancelling"
                            )
                        ),
                        _ITEMS.c.status == "running",
                        _ITEMS.c.lease_expires_at < now,
                    )
                    .values(status="cancelled", finished_at=now, worker_id=None)
                )
                finished = (
                    await connection.execute(
                        update(_JOBS)
                        .where(_JOBS.c.id.in_(candidates), _OPEN, ~unfinished)
                        .values(
                            status=case(
                                (_JOBS.c.status == "cancelling", "cancelled"), else_="completed"
                            ),
                            finished_at=now,
                        )
                        .returning(_JOBS.c.id)
                    )
                ).scalars()
                return list(finished)

    # ----------------------------------------------------------------------------- items

    async def claim(
        self, worker_id: str, *, limit: int, lease_s: float, job_id: str | None = None
    ) -> list[ClaimedItem]:
        """Up to ``limit`` items of the oldest running job that has any, leased to ``worker_id``.

        Items whose lease expired (their worker died) come first, then pending ones in input
        order. ``job_id`` restricts the claim to one job.

        Raises:
            StoreError: The database failed.
        """
        now = datetime.now(UTC)
        jobs = select(_JOBS.c.id, _JOBS.c.mode, _JOBS.c.owner_key_id, _JOBS.c.endpoint).where(
            _JOBS.c.status == "in_progress"
        )
        if job_id is not None:
            jobs = jobs.where(_JOBS.c.id == job_id)
        jobs = jobs.order_by(_JOBS.c.created_at, _JOBS.c.id)
        lease = {
            "status": "running",
            "worker_id": worker_id,
            "lease_expires_at": now + timedelta(seconds=lease_s),
            "claims": _ITEMS.c.claims + 1,
        }
        with wrap_errors("claim_batch_items", self._url):
            async with self._engine.connect() as connection:  # idle workers only read
                running_jobs = (await connection.execute(jobs)).all()
            if not running_jobs:
                return []
            async with self._write_transaction() as connection:
                for job, mode, owner, endpoint in running_jobs:
                    rows = await _claim_in_job(connection, job, limit=limit, lease=lease, now=now)
                    if rows:
                        claimed = [
                            ClaimedItem(
                                job,
                                row.line,
                                row.custom_id,
                                row.body,
                                row.claims,
                                mode,
                                owner,
                                endpoint,
                            )
                            for row in rows
                        ]
                        return sorted(claimed, key=lambda item: item.line)
        return []

    async def complete(self, finished: Sequence[tuple[ClaimedItem, ItemResult]]) -> list[bool]:
        """Commit results, all in one transaction; for each, False (nothing written) if its claim
        was lost meanwhile — another worker took the item over and its result counts.

        Where the driver counts the rows of a multi-row statement (SQLite), the group is one
        statement, which keeps the single writer's lock short; it is redone row by row only when
        a claim was lost.

        Raises:
            StoreError: The database failed; nothing was written.
        """
        now = datetime.now(UTC)
        rows = [_completion(item, result, now) for item, result in finished]
        with wrap_errors("complete_batch_items", self._url):
            async with self._writing():
                if self._engine.dialect.supports_sane_multi_rowcount:
                    async with self._engine.connect() as connection:
                        transaction = await connection.begin()
                        if (await connection.execute(_COMPLETE, rows)).rowcount == len(rows):
                            await transaction.commit()
                            return [True] * len(rows)
                        await transaction.rollback()
                async with self._engine.begin() as connection:
                    return [
                        (await connection.execute(_COMPLETE, row)).rowcount == 1 for row in rows
                    ]

    async def outputs(
        self, job_id: str, *, statuses: Sequence[str], chunk: int = 1000
    ) -> AsyncIterator[ItemOutput]:
        """Finished items with these statuses, in input order, read ``chunk`` rows at a time
        (keyset pagination: no transaction stays open between chunks, memory stays flat)."""
        last = 0
        while True:
            query = (
                select(_ITEMS.c.line, _ITEMS.c.custom_id, _ITEMS.c.status, _ITEMS.c.output)
                .where(
                    _ITEMS.c.job_id == job_id,
                    _ITEMS.c.line > last,
                    _ITEMS.c.status.in_(statuses),
                )
                .order_by(_ITEMS.c.line)
                .limit(chunk)
            )
            with wrap_errors("read_batch_outputs", self._url):
                async with self._engine.connect() as connection:
                    rows = (await connection.execute(query)).all()
            for row in rows:
                yield ItemOutput(row.line, row.custom_id, row.status, row.output)
            if len(rows) < chunk:
                return
            last = rows[-1].line

    async def forget_outputs(self, job_id: str, statuses: Sequence[str]) -> None:
        """Delete the lines of a job's items with these statuses — the bytes of its expired
        output or error file; their status, tokens and cost stay, for the job's counts."""
        with wrap_errors("forget_batch_outputs", self._url):
            async with self._writing(), self._engine.begin() as connection:
                await connection.execute(
                    update(_ITEMS)
                    .where(_ITEMS.c.job_id == job_id, _ITEMS.c.status.in_(statuses))
                    .values(output=None)
                )

    # ----------------------------------------------------------------------- output files

    async def job_of_output_file(self, file_id: str) -> BatchJob | None:
        """The job whose output or error file this is, if it is one."""
        query = select(_JOBS).where(
            or_(_JOBS.c.output_file_id == file_id, _JOBS.c.error_file_id == file_id)
        )
        with wrap_errors("get_batch", self._url):
            async with self._engine.connect() as connection:
                row = (await connection.execute(query)).first()
        return None if row is None else job_from_row(row._mapping)

    async def attach_output_files(
        self, job_id: str, *, output: FileDigest | None, errors: FileDigest | None
    ) -> BatchJob:
        """Record a finished job's output and error files (None: the job has no such lines).

        They have no path — their lines are the items' — and ids derived from the job's, so
        finalising twice (two workers, or a worker and the API) records each file once. They
        belong to the job's owner, and expire as its ``output_expires_after`` says.
        """
        job = await self.get_job(job_id)
        now = datetime.now(UTC)
        ids: dict[str, str | None] = {}
        rows = []
        for kind, digest in (("output", output), ("error", errors)):
            file_id = f"file-{uuid.uuid5(uuid.NAMESPACE_URL, f'{job_id}/{kind}').hex}"
            ids[kind] = file_id if digest is not None else None
            if digest is not None:
                rows.append(
                    {
                        "id": file_id,
                        "purpose": "batch_output",
                        "filename": f"{job_id}_{kind}.jsonl",
                        "bytes": digest.bytes,
                        "sha256": digest.sha256,
                        "path": None,
                        "owner_key_id": job.owner_key_id,
                        "created_at": now,
                        "expires_at": expires_at(now, job.output_expires_after_s),
                    }
                )
        with wrap_errors("attach_batch_files", self._url):
            async with self._writing(), self._engine.begin() as connection:
                if rows:
                    await connection.execute(
                        self._insert(table_of(FileRow)).on_conflict_do_nothing(
                            index_elements=["id"]
                        ),
                        rows,
                    )
                await connection.execute(
                    update(_JOBS)
                    .where(_JOBS.c.id == job_id)
                    .values(output_file_id=ids["output"], error_file_id=ids["error"])
                )
        return await self.get_job(job_id)


async def _claim_in_job(
    connection: AsyncConnection, job_id: str, *, limit: int, lease: dict[str, Any], now: datetime
) -> list[Any]:
    """Lease up to ``limit`` items of one job: expired leases first, then pending in order.

    ``SKIP LOCKED`` makes concurrent PostgreSQL workers pass over each other's rows instead of
    waiting for them (SQLite ignores it: its claims are serialised by the write lock).
    """
    rows: list[Any] = []
    expired = and_(_ITEMS.c.status == "running", _ITEMS.c.lease_expires_at < now)
    for claimable in (expired, _ITEMS.c.status == "pending"):
        if len(rows) >= limit:
            break
        # Two statements, not UPDATE … WHERE line IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED):
        # PostgreSQL may evaluate that subquery more than once and so lease more than n rows.
        pick = (
            select(_ITEMS.c.line)
            .where(_ITEMS.c.job_id == job_id, claimable)
            .order_by(_ITEMS.c.line)
            .limit(limit - len(rows))
            .with_for_update(skip_locked=True)
        )
        lines = (await connection.execute(pick)).scalars().all()
        if not lines:
            continue
        statement = (
            update(_ITEMS)
            .where(_ITEMS.c.job_id == job_id, _ITEMS.c.line.in_(lines))
            .values(lease)
            .returning(_ITEMS.c.line, _ITEMS.c.custom_id, _ITEMS.c.body, _ITEMS.c.claims)
        )
        rows.extend((await connection.execute(statement)).all())
    return rows


_COMPLETE = (
    update(_ITEMS)
    .where(
        _ITEMS.c.job_id == bindparam("item_job_id"),
        _ITEMS.c.line == bindparam("item_line"),
        _ITEMS.c.status == "running",
        _ITEMS.c.claims == bindparam("item_claims"),
    )
    .values(
        {
            **{
                name: bindparam(f"new_{name}")
                for name in (
                    "status",
                    "output",
                    "run_id",
                    "lead_tokens",
                    "slm_tokens",
                    "cost_usd",
                    "lead_only_cost_usd",
                    "finished_at",
                )
            },
            "lease_expires_at": None,
        }
    )
)
"""Commit one result, only under the claim that produced it (built once: this runs per item)."""


def _completion(item: ClaimedItem, result: ItemResult, now: datetime) -> dict[str, Any]:
    run = result.run
    return {
        "item_job_id": item.job_id,
        "item_line": item.line,
        "item_claims": item.claims,
        "new_status": "succeeded" if result.succeeded else "failed",
        "new_output": result.output,
        "new_run_id": run.run_id if run else None,
        "new_lead_tokens": run.lead_tokens if run else 0,
        "new_slm_tokens": run.slm_tokens if run else 0,
        "new_cost_usd": run.cost_usd if run else 0.0,
        "new_lead_only_cost_usd": run.lead_only_cost_usd if run else 0.0,
        "new_finished_at": now,
    }


async def _cancel_pending(connection: AsyncConnection, job_id: str, now: datetime) -> None:
    """Cancel the job's items no worker has claimed yet."""
    await connection.execute(
        update(_ITEMS)
        .where(_ITEMS.c.job_id == job_id, _ITEMS.c.status == "pending")
        .values(status="cancelled", finished_at=now)
    )
