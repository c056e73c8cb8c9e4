"""The audit queue and the counts live figures are computed from, on the process's database.

Enqueued on the hot path (one insert), claimed by workers under a lease — ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, so two workers never audit the same answer — and settled only under the
claim that produced the verdict. An attempt the lead failed goes back to the queue, its spend
kept; an audit whose worker died is claimed again once its lease expires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, case, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from database.engine import Store, wrap_errors
from database.tables import AuditRow, FeedbackRow, RunRow, table_of
from orchestrator.audits.records import (
    AuditCandidate,
    AuditedAnswer,
    AuditVerdict,
    ClaimedAudit,
)
from orchestrator.audits.stats import WindowCounts

_AUDITS = table_of(AuditRow)
VersionKey = tuple[str, str]
"""(specialist, version label)."""


@dataclass(frozen=True, slots=True)
class AuditSummary:
    """One audit as ``specialists audits`` and tests read it."""

    id: int
    run_id: str
    specialist: str
    version: str
    source: str
    status: str
    attempts: int
    agreed: bool | None
    score: float | None
    cost_usd: float
    error: str | None


class AuditStore(Store):
    """The ``audits`` table: enqueue, claim, settle, and the windowed counts."""

    async def enqueue(self, candidate: AuditCandidate) -> bool:
        """Queue ``candidate``; ``False`` when its run is queued already (a replayed run).

        Raises:
            StoreError: The database failed.
        """
        values = {
            "run_id": candidate.run_id,
            "specialist": candidate.specialist,
            "version": candidate.version,
            "judge": candidate.judge,
            "source": candidate.source,
            "messages": candidate.messages,
            "answer": candidate.answer,
            "confidence": candidate.confidence,
            "status": "queued",
            "attempts": 0,
            "cost_usd": 0.0,
            "created_at": _now(),
        }
        with wrap_errors("audits.enqueue", self._url):
            try:
                async with self._writing(), self._engine.begin() as connection:
                    await connection.execute(insert(_AUDITS), values)
            except IntegrityError:
                return False
        return True

    async def claim(self, worker_id: str, *, lease_s: float) -> ClaimedAudit | None:
        """The oldest queued audit (or one whose lease expired), now ``worker_id``'s."""
        now = _now()
        claimable = or_(
            _AUDITS.c.status == "queued",
            and_(_AUDITS.c.status == "running", _AUDITS.c.lease_expires_at < now),
        )
        pick = (
            select(_AUDITS.c.id)
            .where(claimable)
            .order_by(_AUDITS.c.created_at, _AUDITS.c.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        with wrap_errors("audits.claim", self._url):
            async with self._write_transaction() as connection:
                audit_id = await connection.scalar(pick)
                if audit_id is None:
                    return None
                row = (
                    await connection.execute(
                        update(_AUDITS)
                        .where(_AUDITS.c.id == audit_id)
                        .values(
                            status="running",
                            worker_id=worker_id,
                            attempts=_AUDITS.c.attempts + 1,
                            lease_expires_at=now + timedelta(seconds=lease_s),
                        )
                        .returning(*_AUDITS.c)
                    )
                ).one()
        candidate = AuditCandidate(
            run_id=row.run_id,
            specialist=row.specialist,
            version=row.version,
            judge=row.judge,
            messages=row.messages,
            answer=row.answer,
            source=row.source,
            confidence=row.confidence,
        )
        return ClaimedAudit(id=row.id, candidate=candidate, attempts=row.attempts)

    async def settle(self, audit: ClaimedAudit, verdict: AuditVerdict, cost_usd: float) -> bool:
        """Record the verdict and the lead's cost; ``False`` when the claim was lost (its lease
        expired and another worker holds it): nothing was written."""
        return await self._end(
            "settle",
            audit,
            "done",
            cost_usd,
            lead_answer=verdict.lead_answer,
            agreed=verdict.agreed,
            score=verdict.score,
            details=verdict.details,
            finished_at=_now(),
        )

    async def retry(self, audit: ClaimedAudit, cost_usd: float, error: str) -> bool:
        """Put the audit back in the queue (the lead failed in a way another try can mend),
        keeping what the attempt cost and why it failed."""
        return await self._end(
            "retry", audit, "queued", cost_usd, error=error, worker_id=None, lease_expires_at=None
        )

    async def give_up(self, audit: ClaimedAudit, cost_usd: float, error: str) -> bool:
        """End the audit without a verdict (the lead refused the request itself): it is not
        counted in any figure."""
        return await self._end(
            "give_up", audit, "failed", cost_usd, error=error, finished_at=_now()
        )

    async def _end(
        self, operation: str, audit: ClaimedAudit, status: str, cost_usd: float, **values: object
    ) -> bool:
        """Move ``audit`` to ``status``, adding ``cost_usd`` to its spend, only under its claim.

        Raises:
            StoreError: The database failed.
        """
        statement = (
            update(_AUDITS)
            .where(
                _AUDITS.c.id == audit.id,
                _AUDITS.c.status == "running",
                _AUDITS.c.attempts == audit.attempts,
            )
            .values(status=status, cost_usd=_AUDITS.c.cost_usd + cost_usd, **values)
        )
        with wrap_errors(f"audits.{operation}", self._url):
            async with self._writing(), self._engine.begin() as connection:
                result = await connection.execute(statement)
        return bool(result.rowcount)

    async def list_audits(
        self, *, specialist: str | None = None, limit: int = 50
    ) -> list[AuditSummary]:
        """Audits newest first, optionally of one specialist."""
        query = select(_AUDITS).order_by(_AUDITS.c.created_at.desc(), _AUDITS.c.id.desc())
        if specialist is not None:
            query = query.where(_AUDITS.c.specialist == specialist)
        with wrap_errors("audits.list_audits", self._url):
            async with self._engine.connect() as connection:
                rows = (await connection.execute(query.limit(limit))).all()
        return [
            AuditSummary(
                id=row.id,
                run_id=row.run_id,
                specialist=row.specialist,
                version=row.version,
                source=row.source,
                status=row.status,
                attempts=row.attempts,
                agreed=row.agreed,
                score=row.score,
                cost_usd=row.cost_usd,
                error=row.error,
            )
            for row in rows
        ]

    async def window_counts(
        self, *, window: int, days: float, now: datetime | None = None
    ) -> dict[VersionKey, WindowCounts]:
        """Per specialist version: its judged audits among its newest ``window`` finished
        within ``days``, and how many agreed. (Run figures: :meth:`run_counts`.)"""
        since = (now or _now()) - timedelta(days=days)
        newest = (
            select(
                _AUDITS.c.specialist,
                _AUDITS.c.version,
                _AUDITS.c.agreed,
                func.row_number()
                .over(
                    partition_by=(_AUDITS.c.specialist, _AUDITS.c.version),
                    order_by=(_AUDITS.c.finished_at.desc(), _AUDITS.c.id.desc()),
                )
                .label("position"),
            )
            .where(_AUDITS.c.status == "done", _AUDITS.c.finished_at >= since)
            .subquery()
        )
        query = (
            select(
                newest.c.specialist,
                newest.c.version,
                func.count(),
                func.sum(case((newest.c.agreed, 1), else_=0)),
            )
            .where(newest.c.position <= window)
            .group_by(newest.c.specialist, newest.c.version)
        )
        with wrap_errors("audits.window_counts", self._url):
            async with self._engine.connect() as connection:
                rows = (await connection.execute(query)).all()
        return {
            (specialist, version): WindowCounts(audits=count, agreements=int(agreed or 0))
            for specialist, version, count, agreed in rows
        }

    async def audited_answers(
        self,
        specialist: str,
        version: str,
        *,
        window: int,
        days: float,
        now: datetime | None = None,
    ) -> list[AuditedAnswer]:
        """``specialist``'s ``version``'s judged audits that know their answer's confidence,
        newest first: at most ``window`` of those finished within ``days`` (the live figures'
        window, so a re-fit reads the evidence the verdicts read)."""
        since = (now or _now()) - timedelta(days=days)
        query = (
            select(_AUDITS.c.confidence, _AUDITS.c.agreed, _AUDITS.c.score)
            .where(
                _AUDITS.c.specialist == specialist,
                _AUDITS.c.version == version,
                _AUDITS.c.status == "done",
                _AUDITS.c.finished_at >= since,
                _AUDITS.c.confidence.is_not(None),
            )
            .order_by(_AUDITS.c.finished_at.desc(), _AUDITS.c.id.desc())
            .limit(window)
        )
        with wrap_errors("audits.audited_answers", self._url):
            async with self._engine.connect() as connection:
                rows = (await connection.execute(query)).all()
        return [
            AuditedAnswer(
                confidence=row.confidence, agreed=bool(row.agreed), score=row.score or 0.0
            )
            for row in rows
        ]

    async def run_counts(self, specialist: str, *, since: datetime) -> WindowCounts:
        """``specialist``'s runs since ``since``: cascade attempts and escalations, answers it
        gave (``slm``, cascade-accepted) and how many of those drew negative feedback.

        Runs do not record the version that answered, so these count by specialist: callers
        pass the active version's promotion time as ``since`` to keep them to that version.
        """
        accepted = f"cascade:accepted:{specialist}"
        escalated = f"cascade:escalated:{specialist}"
        answered_routes = (accepted, f"slm:{specialist}")
        disliked = (
            select(FeedbackRow.run_id).where(FeedbackRow.score < 0).distinct().scalar_subquery()
        )
        query = select(
            func.sum(case((RunRow.route.in_((accepted, escalated)), 1), else_=0)),
            func.sum(case((RunRow.route == escalated, 1), else_=0)),
            func.sum(case((RunRow.route.in_(answered_routes), 1), else_=0)),
            func.sum(
                case((and_(RunRow.route.in_(answered_routes), RunRow.id.in_(disliked)), 1), else_=0)
            ),
        ).where(RunRow.created_at >= since)
        with wrap_errors("audits.run_counts", self._url):
            async with self._engine.connect() as connection:
                attempts, escalations, answered, bad = (await connection.execute(query)).one()
        return WindowCounts(
            audits=0,
            agreements=0,
            attempts=int(attempts or 0),
            escalations=int(escalations or 0),
            answered=int(answered or 0),
            disliked=int(bad or 0),
        )


def _now() -> datetime:
    return datetime.now(UTC)
