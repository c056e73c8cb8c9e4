"""Distillation jobs: build → train → evaluate (→ promote) for one specialist, as database rows.

A job is queued by hand (``understudy distill start``) or by ``distill propose`` when a proposal
crosses the auto-distillation count; ``understudy worker`` claims it under a lease it renews while
the job runs. A worker that dies stops renewing; once the lease expires another worker claims the
job and resumes it — every step finds its earlier output by content (the dataset's hash, the
training run's identity, the adapter's hash), so nothing is done twice. A job whose workers keep
dying is failed after ``max_attempts`` claims rather than retried forever.

At most one job per specialist is queued or running (a unique index says so).
"""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from database.engine import Store, wrap_errors
from database.tables import DistillJobRow
from distill.progress import TrainingProgress
from distill.registry import NotInRegistry, RegistryError

MAX_ERROR_CHARS = 4000
COMPUTE_STAGES = ("train", "evaluate")
"""The steps whose seconds a job records: the ones that hold the worker's device."""


@dataclass(frozen=True, slots=True)
class DistillJob:
    """One distillation job and how far it got."""

    id: str
    specialist: str
    proposal_id: int | None
    trigger: str
    """``manual`` or ``auto``."""
    status: str
    """``queued``, ``running``, ``succeeded``, ``failed`` or ``cancelled``."""
    stage: str | None
    """``build``, ``train``, ``evaluate`` or ``promote``: running, or the last one reached."""
    attempts: int
    worker_id: str | None
    dataset_path: str | None
    adapter_path: str | None
    version_id: int | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    train_seconds: float = 0.0
    """Seconds its workers spent training, every attempt added (what the ROI ledger prices)."""
    evaluate_seconds: float = 0.0
    """Seconds its workers spent evaluating the candidate, every attempt added."""
    device: str | None = None
    """The device kind it trained on (``cpu``, ``cuda``); ``None`` until training started."""
    training: TrainingProgress | None = None
    """Its training's last progress reading (step, total, loss curve); ``None`` before."""

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")


class DistillJobStore(Store):
    """The queue of distillation jobs, on the process's :class:`Database`."""

    async def enqueue(
        self, specialist: str, *, proposal_id: int | None = None, trigger: str = "manual"
    ) -> DistillJob:
        """Queue a job for ``specialist``.

        Raises:
            RegistryError: A job for ``specialist`` is queued or running already.
        """
        row = DistillJobRow(
            id=uuid.uuid4().hex,
            specialist=specialist,
            proposal_id=proposal_id,
            trigger=trigger,
            status="queued",
            attempts=0,
            train_seconds=0.0,
            evaluate_seconds=0.0,
            created_at=_now(),
        )
        async with self._session("enqueue") as session:
            open_job = await session.scalar(
                select(DistillJobRow.id).where(
                    DistillJobRow.specialist == specialist,
                    DistillJobRow.status.in_(("queued", "running")),
                )
            )
            if open_job is not None:  # the unique index backs this up across processes
                raise RegistryError(
                    f"distillation job {open_job} for {specialist!r} is queued or running "
                    "already (see `understudy distill jobs`)"
                )
            session.add(row)
        return _job(row)

    async def claim(
        self, worker_id: str, *, lease_s: float, max_attempts: int
    ) -> DistillJob | None:
        """The oldest queued job (or one whose worker's lease expired), now ``worker_id``'s;
        ``None`` when there is none. A job claimed ``max_attempts`` times already is failed."""
        now = _now()
        async with self._session("claim") as session:
            query = (
                select(DistillJobRow)
                .where(
                    or_(
                        DistillJobRow.status == "queued",
                        (DistillJobRow.status == "running")
                        & (DistillJobRow.lease_expires_at < now),
                    )
                )
                .order_by(DistillJobRow.created_at, DistillJobRow.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            while (row := (await session.scalars(query)).first()) is not None:
                if row.attempts < max_attempts:
                    row.status, row.worker_id, row.attempts = "running", worker_id, row.attempts + 1
                    row.lease_expires_at = now + timedelta(seconds=lease_s)
                    row.started_at = row.started_at or now
                    return _job(row)
                row.status, row.finished_at = "failed", now
                row.error = f"gave up after {row.attempts} attempts (its workers stopped)"
                row.worker_id = row.lease_expires_at = None
                await session.flush()
        return None

    async def renew(self, job_id: str, worker_id: str, *, lease_s: float) -> bool:
        """Extend the lease; ``False`` when the job is no longer this worker's (cancelled)."""
        async with self._session("renew") as session:
            result = await session.execute(
                update(DistillJobRow)
                .where(
                    DistillJobRow.id == job_id,
                    DistillJobRow.worker_id == worker_id,
                    DistillJobRow.status == "running",
                )
                .values(lease_expires_at=_now() + timedelta(seconds=lease_s))
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]  # a CursorResult

    async def progress(self, job_id: str, worker_id: str, **values: Any) -> None:
        """Record a step's outcome (``stage``, ``dataset_path``, ``adapter_path``,
        ``version_id``) on a job this worker holds."""
        unknown = set(values) - {"stage", "dataset_path", "adapter_path", "version_id"}
        if unknown:
            raise ValueError(f"not progress fields: {sorted(unknown)}")
        async with self._session("progress") as session:
            await session.execute(
                update(DistillJobRow)
                .where(DistillJobRow.id == job_id, DistillJobRow.worker_id == worker_id)
                .values(**values)
            )

    async def record_training(
        self, job_id: str, worker_id: str, progress: TrainingProgress
    ) -> None:
        """Store a progress reading of the training a job this worker holds is doing."""
        async with self._session("record_training") as session:
            await session.execute(
                update(DistillJobRow)
                .where(DistillJobRow.id == job_id, DistillJobRow.worker_id == worker_id)
                .values(training=progress.as_dict())
            )

    async def add_compute(
        self, job_id: str, *, stage: str, seconds: float, device: str | None
    ) -> None:
        """Add ``seconds`` of ``stage`` (``train`` or ``evaluate``) to the job, and the device
        kind it trained on when known.

        Added whoever holds the job now: the seconds were spent even when the lease was lost
        meanwhile, and an increment in the statement itself never loses another's addition.
        """
        if stage not in COMPUTE_STAGES:
            raise ValueError(f"compute is recorded for {COMPUTE_STAGES}, not {stage!r}")
        if seconds < 0:
            raise ValueError(f"seconds must be ≥ 0, got {seconds}")
        column = getattr(DistillJobRow, f"{stage}_seconds")
        values: dict[str, Any] = {column.key: column + seconds}
        if device is not None:
            values["device"] = device
        async with self._session("add_compute") as session:
            await session.execute(
                update(DistillJobRow).where(DistillJobRow.id == job_id).values(**values)
            )

    async def finish(self, job_id: str, worker_id: str, *, error: str | None = None) -> DistillJob:
        """Mark a job this worker holds ``succeeded``, or ``failed`` with ``error``."""
        return await self._end(
            job_id, worker_id, status="failed" if error else "succeeded", error=error
        )

    async def release(self, job_id: str, worker_id: str) -> None:
        """Hand a job back to the queue (the worker is stopping); it resumes elsewhere."""
        async with self._session("release") as session:
            await session.execute(
                update(DistillJobRow)
                .where(DistillJobRow.id == job_id, DistillJobRow.worker_id == worker_id)
                .values(status="queued", worker_id=None, lease_expires_at=None)
            )

    async def cancel(self, job_id: str) -> DistillJob:
        """Cancel a queued or running job (a running one stops at its next step).

        Raises:
            NotInRegistry: No such job.
            RegistryError: It has finished already.
        """
        async with self._session("cancel") as session:
            row = await _row(session, job_id)
            if row.status not in ("queued", "running"):
                raise RegistryError(f"distillation job {job_id} has {row.status} already")
            row.status, row.finished_at = "cancelled", _now()
            row.worker_id = row.lease_expires_at = None
            return _job(row)

    async def get(self, job_id: str) -> DistillJob:
        with wrap_errors("get", self._url):
            async with AsyncSession(self._engine) as session:
                return _job(await _row(session, job_id))

    async def list(self, *, limit: int = 20) -> list[DistillJob]:
        """Jobs, newest first."""
        query = (
            select(DistillJobRow)
            .order_by(DistillJobRow.created_at.desc(), DistillJobRow.id)
            .limit(limit)
        )
        with wrap_errors("list", self._url):
            async with AsyncSession(self._engine) as session:
                return [_job(row) for row in await session.scalars(query)]

    async def _end(
        self, job_id: str, worker_id: str, *, status: str, error: str | None
    ) -> DistillJob:
        async with self._session("finish") as session:
            row = await _row(session, job_id)
            if row.worker_id == worker_id and row.status == "running":
                row.status, row.finished_at = status, _now()
                row.error = error[:MAX_ERROR_CHARS] if error else None
                row.worker_id = row.lease_expires_at = None
            return _job(row)

    def _session(self, operation: str) -> AbstractAsyncContextManager[AsyncSession]:
        return self.database.write_session(operation)


async def _row(session: AsyncSession, job_id: str) -> DistillJobRow:
    row = await session.get(DistillJobRow, job_id)
    if row is None:
        raise NotInRegistry("distillation job", job_id, "see `understudy distill jobs`")
    return row


def _now() -> datetime:
    return datetime.now(UTC)


def _job(row: DistillJobRow) -> DistillJob:
    return DistillJob(
        id=row.id,
        specialist=row.specialist,
        proposal_id=row.proposal_id,
        trigger=row.trigger,
        status=row.status,
        stage=row.stage,
        attempts=row.attempts,
        worker_id=row.worker_id,
        dataset_path=row.dataset_path,
        adapter_path=row.adapter_path,
        version_id=row.version_id,
        error=row.error,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        train_seconds=row.train_seconds,
        evaluate_seconds=row.evaluate_seconds,
        device=row.device,
        training=None if row.training is None else TrainingProgress.from_dict(row.training),
    )
