"""What the runs add up to, for the operator console and ``GET /v1/admin/overview``: traffic by
route over a window, cost against the lead alone, latency percentiles, errors; and a filtered,
newest-first search of the runs.

Everything is aggregated in SQL (grouped by time bucket and route), so a window of 100,000 runs
costs one index range scan (``ix_runs_overview`` covers every column read) and a few dozen
rows back, never the runs themselves. Percentiles are read with ``ORDER BY … OFFSET``, which
both SQLite and PostgreSQL run the same way.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    String,
    and_,
    case,
    cast,
    exists,
    func,
    or_,
    select,
)

from database.engine import Store, wrap_errors
from database.tables import FeedbackRow, RunRow


class Window(enum.Enum):
    """An overview's span and the width of its buckets (seconds)."""

    hour = (3600, 300)
    day = (86400, 3600)
    week = (7 * 86400, 6 * 3600)

    @property
    def span(self) -> timedelta:
        return timedelta(seconds=self.value[0])

    @property
    def bucket_s(self) -> int:
        return self.value[1]


LEAD = "lead"
"""The category of runs the lead answered (``lead``, ``router``, ``cascade:lead``)."""
ESCALATED = "escalated"
DEGRADED = "degraded"
SPECIALIST_PREFIX = "specialist:"


def route_category(route: str, *, escalated: bool, degraded: bool) -> str:
    """Where a run's answer came from: ``degraded`` (a fallback), ``escalated`` (a specialist's
    draft the lead replaced), ``specialist:NAME`` (accepted without the lead), else ``lead``."""
    if degraded:
        return DEGRADED
    if escalated:
        return ESCALATED
    for answered_by in ("cascade:accepted:", "slm:"):
        if route.startswith(answered_by):
            return SPECIALIST_PREFIX + route.removeprefix(answered_by)
    return LEAD


@dataclass(frozen=True, slots=True)
class Bucket:
    """Runs started in ``[start, start + bucket width)``, by category."""

    start: datetime
    counts: dict[str, int]


@dataclass(frozen=True, slots=True)
class Overview:
    """A window of traffic, as the console's first page shows it."""

    window: Window
    since: datetime
    until: datetime
    runs: int
    by_category: dict[str, int]
    buckets: list[Bucket]
    cost_usd: float
    lead_only_cost_usd: float
    errors: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None

    @property
    def saved_usd(self) -> float:
        return self.lead_only_cost_usd - self.cost_usd

    @property
    def without_lead_share(self) -> float | None:
        """Share of runs a specialist answered alone (None without runs)."""
        if not self.runs:
            return None
        alone = sum(n for c, n in self.by_category.items() if c.startswith(SPECIALIST_PREFIX))
        return alone / self.runs

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.runs if self.runs else None

    def as_dict(self) -> dict[str, Any]:
        """The JSON ``GET /v1/admin/overview`` answers."""
        return {
            "object": "overview",
            "window": self.window.name,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "bucket_s": self.window.bucket_s,
            "runs": self.runs,
            "by_category": self.by_category,
            "buckets": [{"start": b.start.isoformat(), "counts": b.counts} for b in self.buckets],
            "without_lead_share": self.without_lead_share,
            "cost_usd": self.cost_usd,
            "lead_only_cost_usd": self.lead_only_cost_usd,
            "saved_usd": self.saved_usd,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p95_ms": self.latency_p95_ms,
        }


class FeedbackFilter(enum.Enum):
    """Runs by the feedback they got: any at all, a positive or negative score, or none."""

    any = "any"
    positive = "positive"
    negative = "negative"
    none = "none"


@dataclass(frozen=True, slots=True)
class RunFilter:
    """What :meth:`RunAnalytics.search` keeps; every field unset keeps everything."""

    mode: str | None = None
    route: str | None = None
    """A route exactly (``router``) or a category (``lead``, ``escalated``, ``specialist:math``)."""
    specialist: str | None = None
    """Runs whose route names this specialist (accepted, escalated or forced)."""
    degraded: bool | None = None
    feedback: FeedbackFilter | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None
    """Found in the request or the answer (case-insensitive)."""
    limit: int = 50
    offset: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= 500 or self.offset < 0:
            raise ValueError(
                f"limit must be 1 to 500 and offset ≥ 0, got limit={self.limit}, "
                f"offset={self.offset}"
            )


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One line of a search: enough to pick a run, not its transcript."""

    run_id: str
    mode: str
    route: str
    category: str
    degraded: bool
    escalated: bool
    confidence: float | None
    cost_usd: float
    latency_ms: float
    failure_kind: str | None
    created_at: datetime
    feedback: int
    """How many judgements it got."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "mode": self.mode,
            "route": self.route,
            "category": self.category,
            "degraded": self.degraded,
            "escalated": self.escalated,
            "confidence": self.confidence,
            "cost_usd": self.cost_usd,
            "latency_ms": self.latency_ms,
            "failure_kind": self.failure_kind,
            "created_at": self.created_at.isoformat(),
            "feedback": self.feedback,
        }


class RunAnalytics(Store):
    """Read-only figures and searches over the transcript store's runs."""

    async def overview(self, window: Window, *, now: datetime | None = None) -> Overview:
        """The runs started in the ``window`` up to ``now`` (default: the current time).

        Raises:
            StoreError: The database failed.
        """
        until = now or datetime.now(UTC)
        since = until - window.span
        in_window = and_(RunRow.created_at >= since, RunRow.created_at <= until)
        bucket = self._bucket(window.bucket_s).label("bucket")
        groups = (
            select(
                bucket,
                RunRow.route,
                RunRow.escalated,
                RunRow.degraded,
                func.count(),
                func.sum(RunRow.cost_usd),
                func.sum(RunRow.lead_only_cost_usd),
                func.sum(case((RunRow.failure_kind.is_not(None), 1), else_=0)),
            )
            .where(in_window)
            .group_by(bucket, RunRow.route, RunRow.escalated, RunRow.degraded)
        )
        with wrap_errors("overview", self._url):
            async with self._engine.connect() as connection:
                rows = (await connection.execute(groups)).all()
                runs = sum(row[4] for row in rows)
                p50, p95 = (
                    [
                        await connection.scalar(
                            select(RunRow.latency_ms)
                            .where(in_window)
                            .order_by(RunRow.latency_ms)
                            .offset(_rank(q, runs))
                            .limit(1)
                        )
                        for q in (0.5, 0.95)
                    ]
                    if runs
                    else [None, None]
                )
        by_bucket: dict[int, dict[str, int]] = {}
        by_category: dict[str, int] = {}
        cost = lead_only = 0.0
        errors = 0
        for start, route, escalated, degraded, count, spent, lead_cost, failed in rows:
            category = route_category(route, escalated=escalated, degraded=degraded)
            counts = by_bucket.setdefault(int(start), {})
            counts[category] = counts.get(category, 0) + count
            by_category[category] = by_category.get(category, 0) + count
            cost += spent or 0.0
            lead_only += lead_cost or 0.0
            errors += failed or 0
        first = math.floor(since.timestamp() / window.bucket_s)
        last = math.floor(until.timestamp() / window.bucket_s)
        buckets = [
            Bucket(
                start=datetime.fromtimestamp(n * window.bucket_s, UTC),
                counts=by_bucket.get(n, {}),
            )
            for n in range(first, last + 1)
        ]
        return Overview(
            window=window,
            since=since,
            until=until,
            runs=runs,
            by_category=dict(sorted(by_category.items())),
            buckets=buckets,
            cost_usd=cost,
            lead_only_cost_usd=lead_only,
            errors=errors,
            latency_p50_ms=p50,
            latency_p95_ms=p95,
        )

    async def search(self, where: RunFilter) -> list[RunSummary]:
        """Runs that match ``where``, newest first, with their feedback counts.

        Raises:
            StoreError: The database failed.
        """
        feedback_count = (
            select(func.count())
            .where(FeedbackRow.run_id == RunRow.id)
            .correlate(RunRow)
            .scalar_subquery()
        )
        query = (
            select(
                RunRow.id,
                RunRow.mode,
                RunRow.route,
                RunRow.degraded,
                RunRow.escalated,
                RunRow.confidence,
                RunRow.cost_usd,
                RunRow.latency_ms,
                RunRow.failure_kind,
                RunRow.created_at,
                feedback_count,
            )
            .where(*_conditions(where))
            .order_by(RunRow.created_at.desc(), RunRow.id.desc())
            .limit(where.limit)
            .offset(where.offset)
        )
        with wrap_errors("search_runs", self._url):
            async with self._engine.connect() as connection:
                rows = (await connection.execute(query)).all()
        return [
            RunSummary(
                run_id=row[0],
                mode=row[1],
                route=row[2],
                category=route_category(row[2], escalated=row[4], degraded=row[3]),
                degraded=row[3],
                escalated=row[4],
                confidence=row[5],
                cost_usd=row[6],
                latency_ms=row[7],
                failure_kind=row[8],
                created_at=row[9],
                feedback=row[10],
            )
            for row in rows
        ]

    def _bucket(self, width_s: int) -> ColumnElement[Any]:
        """The bucket number of a run's start (Unix seconds // ``width_s``), in this dialect."""
        if self.database.dialect == "postgresql":
            seconds = func.extract("epoch", RunRow.created_at)
            return cast(func.floor(seconds / width_s), BigInteger)
        # SQLite keeps UTCDateTime as UTC text, which strftime reads.
        return cast(func.strftime("%s", RunRow.created_at), Integer) / width_s


def _rank(quantile: float, count: int) -> int:
    """The 0-based position of the ``quantile`` (nearest rank) among ``count`` sorted values."""
    return max(0, math.ceil(quantile * count) - 1)


def _conditions(where: RunFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if where.mode:
        conditions.append(RunRow.mode == where.mode)
    if where.route:
        conditions.append(_route_condition(where.route))
    if where.specialist:
        conditions.append(RunRow.route.like(f"%:{_escape_like(where.specialist)}", escape="\\"))
    if where.degraded is not None:
        conditions.append(RunRow.degraded == where.degraded)
    if where.since:
        conditions.append(RunRow.created_at >= where.since)
    if where.until:
        conditions.append(RunRow.created_at <= where.until)
    if where.feedback is not None:
        conditions.append(_feedback_condition(where.feedback))
    if where.text:
        pattern = f"%{_escape_like(where.text.lower())}%"
        conditions.append(
            or_(
                func.lower(RunRow.answer).like(pattern, escape="\\"),
                func.lower(cast(RunRow.input_messages, String)).like(pattern, escape="\\"),
            )
        )
    return conditions


def _route_condition(route: str) -> ColumnElement[bool]:
    """A category (see :func:`route_category`) or a route as recorded."""
    if route == DEGRADED:
        return RunRow.degraded.is_(True)
    if route == ESCALATED:
        return and_(RunRow.escalated.is_(True), RunRow.degraded.is_(False))
    plain = and_(RunRow.escalated.is_(False), RunRow.degraded.is_(False))
    if route == LEAD:
        return and_(plain, RunRow.route.in_(("lead", "router", "cascade:lead")))
    if route.startswith(SPECIALIST_PREFIX):
        name = route.removeprefix(SPECIALIST_PREFIX)
        return and_(plain, RunRow.route.in_((f"cascade:accepted:{name}", f"slm:{name}")))
    return RunRow.route == route


def _feedback_condition(feedback: FeedbackFilter) -> ColumnElement[bool]:
    scored = FeedbackRow.run_id == RunRow.id
    match feedback:
        case FeedbackFilter.any:
            return exists().where(scored)
        case FeedbackFilter.none:
            return ~exists().where(scored)
        case FeedbackFilter.positive:
            return exists().where(scored, FeedbackRow.score > 0)
        case FeedbackFilter.negative:
            return exists().where(scored, FeedbackRow.score < 0)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
