"""The console's figures over the runs table, aggregated in SQL, the same on SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.outcome import Failure, FailureKind
from orchestrator.transcripts import TranscriptStore
from orchestrator.transcripts.analytics import (
    FeedbackFilter,
    RunAnalytics,
    RunFilter,
    Window,
    route_category,
)
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


async def test_the_overview_adds_up_a_window_by_bucket_and_route(
    transcript_store: TranscriptStore,
) -> None:
    runs = [
        make_run(
            route="lead",
            escalated=False,
            cost_usd=1.0,
            lead_only_cost_usd=1.0,
            latency_ms=100.0,
            created_at=T0 - timedelta(minutes=10),
        ),
        make_run(
            route="cascade:accepted:math",
            escalated=False,
            cost_usd=0.0,
            lead_only_cost_usd=1.0,
            latency_ms=20.0,
            created_at=T0 - timedelta(minutes=70),
        ),
        make_run(
            route="cascade:escalated:math",
            escalated=True,
            cost_usd=2.0,
            lead_only_cost_usd=1.0,
            latency_ms=900.0,
            created_at=T0 - timedelta(minutes=70),
            failure=Failure(FailureKind.lead_unavailable, "down"),
            degraded=True,
        ),
        make_run(route="lead", created_at=T0 - timedelta(days=2)),  # outside the day
    ]
    for run in runs:
        await transcript_store.save_run(run)
    analytics = RunAnalytics(transcript_store.database)

    day = await analytics.overview(Window.day, now=T0)

    assert day.runs == 3
    assert day.by_category == {"degraded": 1, "lead": 1, "specialist:math": 1}
    assert (day.cost_usd, day.lead_only_cost_usd, day.saved_usd) == (3.0, 3.0, 0.0)
    assert day.without_lead_share == pytest.approx(1 / 3)
    assert day.errors == 1 and day.error_rate == pytest.approx(1 / 3)
    assert (day.latency_p50_ms, day.latency_p95_ms) == (100.0, 900.0)
    assert len(day.buckets) == 25  # hourly, both ends included
    assert day.buckets[-1].counts == {} and day.buckets[-2].counts == {"lead": 1}
    assert day.buckets[-3].counts == {"degraded": 1, "specialist:math": 1}
    hour = await analytics.overview(Window.hour, now=T0)
    assert hour.runs == 1 and hour.by_category == {"lead": 1}
    empty = await analytics.overview(Window.hour, now=T0 - timedelta(days=30))
    assert (empty.runs, empty.latency_p50_ms, empty.without_lead_share) == (0, None, None)


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
        return [s.run_id for s in await analytics.search(RunFilter(**where))]  # type: ignore[arg-type]

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
    assert await ids(since=T0 - timedelta(minutes=2, seconds=30)) == [lead.run_id, accepted.run_id]
    assert await ids(limit=1, offset=1) == [accepted.run_id]
    summary = (await analytics.search(RunFilter(route="specialist:math")))[0]
    assert (summary.category, summary.feedback) == ("specialist:math", 1)
