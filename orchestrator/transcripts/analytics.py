"""What the runs add up to, for the operator console and ``GET /v1/admin/overview``: traffic by
route over a window, cost against the lead alone, latency percentiles, errors; and a filtered,
newest-first search of the runs.

The overview reads ``run_rollups`` (``database/tables/rollups.py``: runs added up per five
minutes and route category as they are recorded), never the runs: a week is ~2,000 buckets times a
few categories, whatever the traffic. Its window is whole buckets (from the start of the bucket
that holds ``now - span``), and its latency percentiles come from the rollup's histogram, exact
to within one bin (≈ 19 %). A text search reads the runs themselves, so it is bounded to a time
range of at most :data:`TEXT_SEARCH_SPAN` (the last day unless given), on ``ix_runs_created_at``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    cast,
    exists,
    func,
    or_,
    select,
)

from database.engine import Store, wrap_errors
from database.tables import FeedbackRow, RunRow, run_rollups
from database.tables.rollups import (
    DEGRADED,
    ESCALATED,
    LATENCY_BIN_RATIO,
    LATENCY_COLUMNS,
    LEAD,
    SPECIALIST_PREFIX,
    latency_bin_bounds,
    route_category,
)

__all__ = [
    "DEGRADED",
    "ESCALATED",
    "LEAD",
    "SEARCH_LIMIT_MAX",
    "SEARCH_OFFSET_MAX",
    "SPECIALIST_PREFIX",
    "TEXT_SEARCH_SPAN",
    "Bucket",
    "FeedbackFilter",
    "Overview",
    "RunAnalytics",
    "RunFilter",
    "RunFilterError",
    "RunSummary",
    "Window",
    "route_category",
]

TEXT_SEARCH_SPAN = timedelta(days=1)
"""The widest time range a text search reads: it looks inside every run in it."""
SEARCH_LIMIT_MAX = 500
"""Most runs in one page of a search."""
SEARCH_OFFSET_MAX = 1_000_000
"""Deepest page of a search: beyond it, narrow the filter (the database skips every row)."""


class RunFilterError(ValueError):
    """A search its caller must change: says which field and why."""


class Window(enum.StrEnum):
    """An overview's span, named as the console and ``GET /v1/admin/overview?window=`` say it."""

    hour = "hour"
    day = "day"
    week = "week"

    @property
    def span(self) -> timedelta:
        return _SPANS[self][0]

    @property
    def bucket_s(self) -> int:
        """The width of its buckets (seconds), a multiple of the rollup's five minutes."""
        return _SPANS[self][1]


_SPANS = {
    Window.hour: (timedelta(hours=1), 300),
    Window.day: (timedelta(days=1), 3600),
    Window.week: (timedelta(days=7), 6 * 3600),
}


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
            "latency_bin_ratio": LATENCY_BIN_RATIO,
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
    """Found in the request or the answer (case-insensitive). It reads every run of its time
    range, so that range is bounded: at most :data:`TEXT_SEARCH_SPAN`, by default the one
    before ``until`` (or now)."""
    limit: int = 50
    offset: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= SEARCH_LIMIT_MAX or not 0 <= self.offset <= SEARCH_OFFSET_MAX:
            raise RunFilterError(
                f"limit must be 1 to {SEARCH_LIMIT_MAX} and offset 0 to {SEARCH_OFFSET_MAX:,}, "
                f"got limit={self.limit}, offset={self.offset}"
            )
        # A moment without a zone is read as UTC, as the console's date fields are.
        for field in ("since", "until"):
            moment = getattr(self, field)
            if moment is not None and moment.tzinfo is None:
                object.__setattr__(self, field, moment.replace(tzinfo=UTC))
        if self.since and self.until and self.since > self.until:
            raise RunFilterError(f"since ({self.since}) is after until ({self.until})")
        if self.text and self.since and self.until_or_now - self.since > TEXT_SEARCH_SPAN:
            raise RunFilterError(
                f"a text search reads at most {TEXT_SEARCH_SPAN.days} day of runs; set Since "
                "and Until less than a day apart, or search without text"
            )

    @property
    def until_or_now(self) -> datetime:
        return self.until or datetime.now(UTC)

    def bounded(self, now: datetime) -> RunFilter:
        """This filter with a text search's default range filled in (the day before ``until``,
        or ``now``)."""
        if not self.text or self.since is not None:
            return self
        until = self.until or now
        earliest = datetime.min.replace(tzinfo=UTC)
        since = earliest if until - earliest < TEXT_SEARCH_SPAN else until - TEXT_SEARCH_SPAN
        return replace(self, since=since, until=until)


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
        """The runs of the ``window``'s buckets up to ``now`` (default: the current time): from
        the start of the bucket holding ``now - span`` to the end of the one holding ``now``.

        Raises:
            StoreError: The database failed.
        """
        until = now or datetime.now(UTC)
        width = window.bucket_s
        first = math.floor((until - window.span).timestamp() / width)
        last = math.floor(until.timestamp() / width)
        rollup = run_rollups.c
        in_window = and_(
            rollup.bucket_start >= first * width, rollup.bucket_start < (last + 1) * width
        )
        bucket = (rollup.bucket_start // width).label("bucket")
        groups = (
            select(
                bucket,
                rollup.category,
                func.sum(rollup.runs),
                func.sum(rollup.errors),
                func.sum(rollup.cost_usd),
                func.sum(rollup.lead_only_cost_usd),
            )
            .where(in_window)
            .group_by(bucket, rollup.category)
        )
        histogram = select(*(func.sum(rollup[name]) for name in LATENCY_COLUMNS)).where(in_window)
        with wrap_errors("overview", self._url):
            async with self._engine.connect() as connection:
                rows = (await connection.execute(groups)).all()
                bins = [int(n or 0) for n in (await connection.execute(histogram)).one()]
        by_bucket: dict[int, dict[str, int]] = {}
        by_category: dict[str, int] = {}
        cost = lead_only = 0.0
        errors = 0
        for number, category, count, failed, spent, lead_cost in rows:
            by_bucket.setdefault(int(number), {})[category] = int(count)
            by_category[category] = by_category.get(category, 0) + int(count)
            errors += int(failed)
            cost += spent
            lead_only += lead_cost
        runs = sum(by_category.values())
        return Overview(
            window=window,
            since=datetime.fromtimestamp(first * width, UTC),
            until=until,
            runs=runs,
            by_category=dict(sorted(by_category.items())),
            buckets=[
                Bucket(
                    start=datetime.fromtimestamp(n * width, UTC),
                    counts=dict(sorted(by_bucket.get(n, {}).items())),
                )
                for n in range(first, last + 1)
            ],
            cost_usd=cost,
            lead_only_cost_usd=lead_only,
            errors=errors,
            latency_p50_ms=_percentile(bins, 0.5),
            latency_p95_ms=_percentile(bins, 0.95),
        )

    async def search(self, where: RunFilter, *, now: datetime | None = None) -> list[RunSummary]:
        """Runs that match ``where`` (:meth:`RunFilter.bounded` at ``now``, default the current
        time), newest first, with their feedback counts.

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
            .where(*_conditions(where.bounded(now or datetime.now(UTC))))
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


def _percentile(bins: list[int], quantile: float) -> float | None:
    """The nearest-rank ``quantile`` of a latency histogram, placed linearly inside its bin (so
    within the bin of the exact value); the open last bin answers its lower bound. None when
    empty."""
    count = sum(bins)
    if not count:
        return None
    rank = max(1, math.ceil(quantile * count))
    below = 0
    for index, in_bin in enumerate(bins):
        if below + in_bin >= rank:
            low, high = latency_bin_bounds(index)
            if math.isinf(high):
                return low
            return low + (high - low) * (rank - below) / in_bin
        below += in_bin
    raise AssertionError("unreachable: the ranks add up to the count")


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
        lead_routes = RunRow.route.in_(("lead", "router", "cascade:lead"))
        return and_(plain, or_(lead_routes, RunRow.route.like("cascade:skipped:%")))
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
