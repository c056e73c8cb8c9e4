"""The return-on-investment ledger's queries: every figure summed per day in the database.

The runs table is the large one: accepted answers are summed per route and UTC day, with the
routes named (``slm:NAME``, ``cascade:accepted:NAME``) so the ``(route, created_at)`` index
(migration 0016) finds them without reading other runs. Audits are summed per version and day;
jobs are few and read whole. :mod:`distill.roi` turns the sums into ledgers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from database.engine import Store, wrap_errors
from database.functions import utc_day
from database.tables import AuditRow, DistillJobRow, RunRow, SpecialistVersionRow
from distill.catalog import tag_of
from distill.roi import (
    AnswerValue,
    AuditSpend,
    JobCompute,
    RoiConfig,
    SpecialistLedger,
    ledgers,
)

ACCEPTED_PREFIXES = ("slm:", "cascade:accepted:")
"""Routes of answers a specialist gave that no lead wrote, followed by its name."""


class RoiStore(Store):
    """Reads the ledger's figures from the process's database."""

    async def ledgers(
        self,
        names: Sequence[str],
        config: RoiConfig,
        *,
        since: datetime | None = None,
        now: datetime | None = None,
    ) -> list[SpecialistLedger]:
        """The ledger of each of ``names``, from ``since`` (all time when ``None``) to now."""
        if since is not None and since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        with wrap_errors("roi.ledgers", self._url):
            async with self._engine.connect() as connection:
                jobs = await _jobs(connection, names, since)
                audits = await _audits(connection, names, since)
                answers = await _answers(connection, names, since)
        today = (now or datetime.now(UTC)).astimezone(UTC).date()
        return ledgers(names, jobs, audits, answers, config, today=today)


async def _jobs(
    connection: AsyncConnection, names: Sequence[str], since: datetime | None
) -> list[JobCompute]:
    when = func.coalesce(DistillJobRow.started_at, DistillJobRow.created_at)
    query = (
        select(
            DistillJobRow.specialist,
            SpecialistVersionRow.version,
            SpecialistVersionRow.adapter_sha256,
            utc_day(when),
            DistillJobRow.train_seconds,
            DistillJobRow.evaluate_seconds,
            DistillJobRow.device,
        )
        .outerjoin(SpecialistVersionRow, SpecialistVersionRow.id == DistillJobRow.version_id)
        .where(
            DistillJobRow.specialist.in_(names),
            DistillJobRow.train_seconds + DistillJobRow.evaluate_seconds > 0,
        )
    )
    if since is not None:
        query = query.where(when >= since)
    return [
        JobCompute(
            specialist=name,
            version=None if number is None else tag_of(number, sha256),
            day=date.fromisoformat(day),
            train_seconds=train,
            evaluate_seconds=evaluate,
            device=device,
        )
        for name, number, sha256, day, train, evaluate, device in await connection.execute(query)
    ]


async def _audits(
    connection: AsyncConnection, names: Sequence[str], since: datetime | None
) -> list[AuditSpend]:
    when = func.coalesce(AuditRow.finished_at, AuditRow.created_at)
    day = utc_day(when)
    query = (
        select(
            AuditRow.specialist, AuditRow.version, day, func.count(), func.sum(AuditRow.cost_usd)
        )
        .where(AuditRow.specialist.in_(names))
        .group_by(AuditRow.specialist, AuditRow.version, day)
    )
    if since is not None:
        query = query.where(when >= since)
    return [
        AuditSpend(name, version, date.fromisoformat(d), count, float(cost or 0.0))
        for name, version, d, count, cost in await connection.execute(query)
    ]


async def _answers(
    connection: AsyncConnection, names: Sequence[str], since: datetime | None
) -> list[AnswerValue]:
    routes = [f"{prefix}{name}" for name in names for prefix in ACCEPTED_PREFIXES]
    day = utc_day(RunRow.created_at)
    clean = and_(RunRow.error.is_(None), RunRow.degraded.is_(False))
    query = (
        select(
            RunRow.route,
            day,
            func.count(),
            func.sum(RunRow.lead_only_cost_usd),
            func.sum(RunRow.cost_usd),
        )
        .where(RunRow.route.in_(routes), clean)
        .group_by(RunRow.route, day)
    )
    if since is not None:
        query = query.where(RunRow.created_at >= since)
    values = []
    for route, d, count, lead_only, cost in await connection.execute(query):
        name = next(route.removeprefix(p) for p in ACCEPTED_PREFIXES if route.startswith(p))
        values.append(
            AnswerValue(name, date.fromisoformat(d), count, float(lead_only or 0), float(cost or 0))
        )
    return values
