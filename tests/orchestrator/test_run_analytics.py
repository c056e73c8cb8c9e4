"""The console's figures over the runs table, aggregated in SQL, the same on SQLite and
PostgreSQL."""

from __future__ import annotations

import math
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from database.engine import migrate
from database.tables.rollups import latency_bin, latency_bin_bounds
from orchestrator.outcome import Failure, FailureKind
from orchestrator.transcripts import RunRecord, TranscriptStore
from orchestrator.transcripts.analytics import (
    FeedbackFilter,
    RunAnalytics,
    RunFilter,
    RunFilterError,
    Window,
    route_category,
)
from tests.helpers.stores import open_store
from tests.orchestrator.test_transcripts import T0, make_run


@pytest.mark.parametrize(
    ("route", "escalated", "degraded", "category"),
    [
        ("lead", False, False, "lead"),
        ("router", False, False, "lead"),
        ("cascade:lead", False, False, "lead"),
        ("cascade:accepted:math", False, False, "specialist:math"),
        ("slm:code", False, False, "specialist:code"),
        ("cascade:escalated:math", True, False, "escalated"),
        ("cascade:escalated:math", True, True, "degraded"),
    ],
)
def test_every_route_has_one_category(
    route: str, escalated: bool, degraded: bool, category: str
) -> None:
    assert route_category(route, escalated=escalated, degraded=degraded) == category


ROUTES = [
    ("lead", False),
    ("router", False),
    ("cascade:lead", False),
    ("cascade:accepted:math", False),
    ("slm:code", False),
    ("cascade:escalated:math", True),
]


def _direct(runs: list[RunRecord], window: Window, now: datetime) -> dict[str, Any]:
    """The overview's figures computed from the runs themselves, the slow obvious way."""
    width = window.bucket_s
    first = math.floor((now - window.span).timestamp() / width)
    last = math.floor(now.timestamp() / width)
    inside = [r for r in runs if first <= math.floor(r.created_at.timestamp() / width) <= last]
    categories = [
        route_category(r.route, escalated=r.escalated, degraded=r.degraded) for r in inside
    ]
    buckets: list[dict[str, int]] = [{} for _ in range(first, last + 1)]
    for run, category in zip(inside, categories, strict=True):
        counts = buckets[math.floor(run.created_at.timestamp() / width) - first]
        counts[category] = counts.get(category, 0) + 1
    latencies = sorted(r.latency_ms for r in inside)
    return {
        "runs": len(inside),
        "by_category": dict(sorted(Counter(categories).items())),
        "buckets": buckets,
        "cost_usd": sum(r.cost_usd for r in inside),
        "lead_only_cost_usd": sum(r.lead_only_cost_usd for r in inside),
        "errors": sum(r.failure is not None for r in inside),
        "p50": latencies[math.ceil(0.5 * len(latencies)) - 1] if latencies else None,
        "p95": latencies[math.ceil(0.95 * len(latencies)) - 1] if latencies else None,
    }


def _same_bin(estimate: float | None, exact: float | None) -> bool:
    if exact is None:
        return estimate is None
    low, high = latency_bin_bounds(latency_bin(exact))
    return estimate is not None and low <= estimate <= high


async def test_the_overview_matches_a_direct_computation_over_the_runs(
    transcript_store: TranscriptStore,
) -> None:
    rng = random.Random(7)
    runs = []
    for _ in range(400):
        route, escalated = rng.choice(ROUTES)
        runs.append(
            make_run(
                route=route,
                escalated=escalated,
                degraded=escalated and rng.random() < 0.3,
                cost_usd=rng.random() / 100,
                lead_only_cost_usd=rng.random() / 100,
                latency_ms=rng.choice([0.4, rng.expovariate(1 / 700), 2e6]),
                failure=Failure(FailureKind.lead_unavailable, "down")
                if rng.random() < 0.1
                else None,
                created_at=T0 - timedelta(seconds=rng.uniform(-60, 8 * 86400)),
            )
        )
    for run in runs:
        await transcript_store.save_run(run)
    analytics = RunAnalytics(transcript_store.database)

    for window, now in [
        (Window.hour, T0),
        (Window.day, T0),
        (Window.week, T0),
        (Window.day, T0 - timedelta(days=3, minutes=17)),
        (Window.hour, T0 - timedelta(days=30)),
    ]:
        figures = await analytics.overview(window, now=now)
        direct = _direct(runs, window, now)

        assert figures.runs == direct["runs"]
        assert figures.by_category == direct["by_category"]
        assert [b.counts for b in figures.buckets] == direct["buckets"]
        assert figures.buckets[0].start == figures.since <= now - window.span
        assert figures.cost_usd == pytest.approx(direct["cost_usd"])
        assert figures.lead_only_cost_usd == pytest.approx(direct["lead_only_cost_usd"])
        assert figures.errors == direct["errors"]
        assert _same_bin(figures.latency_p50_ms, direct["p50"])
        assert _same_bin(figures.latency_p95_ms, direct["p95"])
    week = await analytics.overview(Window.week, now=T0)
    assert week.runs > 300 and len(week.buckets) == 29  # six-hourly, both ends included


@pytest.mark.parametrize(
    ("latency_ms", "bin_index"), [(-1.0, 0), (0.99, 0), (1.0, 1), (1.18, 1), (1.19, 2), (1e9, 79)]
)
def test_latency_bins_are_geometric_and_bounded(latency_ms: float, bin_index: int) -> None:
    assert latency_bin(latency_ms) == bin_index
    low, high = latency_bin_bounds(bin_index)
    assert low <= max(latency_ms, 0.0) < high


async def test_a_search_filters_by_each_field_newest_first(
    transcript_store: TranscriptStore,
) -> None:
    lead = make_run(
        route="lead",
        escalated=False,
        mode="llm",
        answer="Paris",
        created_at=T0 - timedelta(minutes=1),
    )
    accepted = make_run(
        route="cascade:accepted:math",
        escalated=False,
        answer="42",
        created_at=T0 - timedelta(minutes=2),
    )
    escalated = make_run(created_at=T0 - timedelta(minutes=3))  # cascade:escalated:math, "391"
    for run in (lead, accepted, escalated):
        await transcript_store.save_run(run)
    await transcript_store.add_feedback(accepted.run_id, -1.0)
    analytics = RunAnalytics(transcript_store.database)

    async def ids(**where: object) -> list[str]:
        return [s.run_id for s in await analytics.search(RunFilter(**where), now=T0)]  # type: ignore[arg-type]

    assert await ids() == [lead.run_id, accepted.run_id, escalated.run_id]
    assert await ids(mode="llm") == [lead.run_id]
    assert await ids(route="specialist:math") == [accepted.run_id]
    assert await ids(route="escalated") == [escalated.run_id]
    assert await ids(route="lead") == [lead.run_id]
    assert await ids(specialist="math") == [accepted.run_id, escalated.run_id]
    assert await ids(feedback=FeedbackFilter.negative) == [accepted.run_id]
    assert await ids(feedback=FeedbackFilter.none) == [lead.run_id, escalated.run_id]
    assert await ids(text="PARIS") == [lead.run_id]
    assert await ids(text="combien") == [lead.run_id, accepted.run_id, escalated.run_id]
    assert await ids(text="100%") == []
    # A text search reads one day of runs at most: the day before `until` (or now) by default.
    assert await ids(text="PARIS", until=T0 - timedelta(days=1)) == []
    assert await ids(text="PARIS", since=T0 - timedelta(hours=1), until=T0) == [lead.run_id]
    with pytest.raises(RunFilterError, match="at most 1 day"):
        RunFilter(text="PARIS", since=T0 - timedelta(days=2), until=T0)
    # Moments without a zone are UTC, as the console's date fields are.
    naive = (T0 - timedelta(minutes=2, seconds=30)).replace(tzinfo=None)
    assert await ids(since=naive) == [lead.run_id, accepted.run_id]
    assert await ids(since=T0 - timedelta(minutes=2, seconds=30)) == [lead.run_id, accepted.run_id]
    assert await ids(limit=1, offset=1) == [accepted.run_id]
    summary = (await analytics.search(RunFilter(route="specialist:math")))[0]
    assert (summary.category, summary.feedback) == ("specialist:math", 1)


@pytest.mark.parametrize(
    ("where", "complaint"),
    [
        ({"limit": 0}, "limit must be 1 to 500"),
        ({"offset": 1_000_001}, "offset 0 to 1,000,000"),
        ({"since": T0, "until": T0 - timedelta(seconds=1)}, "is after until"),
        ({"text": "x", "since": datetime.min.replace(tzinfo=UTC)}, "at most 1 day"),
    ],
)
def test_a_search_its_caller_must_change_is_refused_by_name(
    where: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(RunFilterError, match=complaint):
        RunFilter(**where)


def test_a_text_search_at_the_start_of_time_does_not_overflow() -> None:
    start = datetime.min.replace(tzinfo=UTC)
    bounded = RunFilter(text="x", until=start + timedelta(hours=1)).bounded(T0)
    assert (bounded.since, bounded.until) == (start, start + timedelta(hours=1))


async def test_migration_0017_adds_up_the_runs_stored_before_it(database_url: str) -> None:
    """Runs recorded before the rollup existed are in the overview once the database is
    migrated: the schema is put back to 0016 (runs kept, the tables and columns of 0017 and
    later gone) and upgraded."""
    store = await open_store(TranscriptStore, database_url)
    try:
        for minutes in (5, 50, 500, 5000):
            await store.save_run(
                make_run(latency_ms=minutes * 3.0, created_at=T0 - timedelta(minutes=minutes))
            )
        analytics = RunAnalytics(store.database)
        before = (await analytics.overview(Window.week, now=T0)).as_dict()
        async with store.database.engine.begin() as connection:
            for statement in (
                "DROP TABLE run_rollups",
                "DROP TABLE console_sessions",
                "ALTER TABLE runs DROP COLUMN difficulty",  # 0018's
                "ALTER TABLE distill_jobs DROP COLUMN training",  # 0019's
                "UPDATE alembic_version SET version_num = '0016'",
            ):
                await connection.exec_driver_sql(statement)
        await migrate(store.database.engine)
        after = (await analytics.overview(Window.week, now=T0)).as_dict()
    finally:
        await store.database.close()
    assert before["runs"] == 4
    assert after == before
