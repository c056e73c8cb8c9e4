"""The audit figures and rate as pure functions, against values worked out by hand (and
published Wilson intervals)."""

from __future__ import annotations

import pytest

from orchestrator.audits import (
    AuditPolicy,
    WindowCounts,
    audit_rate,
    is_selected,
    live_stats,
    wilson_interval,
)

POLICY = AuditPolicy(rate=0.5, floor=0.05, min_audits=20, target_width=0.1)


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        (8, 10, 0.4902, 0.9433),  # the textbook example (Newcombe 1998, method 3)
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (95, 100, 0.8882, 0.9785),
        (0, 0, 0.0, 1.0),  # nothing audited: nothing known
    ],
)
def test_wilson_interval_matches_known_values(
    successes: int, trials: int, low: float, high: float
) -> None:
    interval = wilson_interval(successes, trials)
    assert interval.low == pytest.approx(low, abs=1e-4)
    assert interval.high == pytest.approx(high, abs=1e-4)


def test_wilson_interval_narrows_with_more_audits_at_the_same_precision() -> None:
    widths = [wilson_interval(9 * n, 10 * n).width for n in (1, 10, 100)]
    assert widths[0] > widths[1] > widths[2]


@pytest.mark.parametrize(("successes", "trials"), [(-1, 3), (4, 3), (0, -1)])
def test_wilson_interval_refuses_impossible_counts(successes: int, trials: int) -> None:
    with pytest.raises(ValueError, match="successes ≤ trials"):
        wilson_interval(successes, trials)


def test_live_stats_divide_what_was_counted_and_say_none_where_nothing_was() -> None:
    stats = live_stats(
        WindowCounts(audits=10, agreements=8, attempts=40, escalations=10, answered=30, disliked=3)
    )
    assert stats.precision == 0.8 and stats.interval == wilson_interval(8, 10)
    assert stats.escalation_rate == 0.25 and stats.negative_feedback_rate == 0.1
    empty = live_stats(WindowCounts(audits=0, agreements=0))
    assert empty.precision is None and empty.escalation_rate is None
    assert empty.negative_feedback_rate is None and empty.interval.width == 1.0


def test_a_version_little_is_known_about_is_audited_at_the_ceiling() -> None:
    assert audit_rate(None, POLICY) == 0.5
    few = live_stats(WindowCounts(audits=19, agreements=19))  # below min_audits
    assert audit_rate(few, POLICY) == 0.5


def test_the_rate_falls_with_the_interval_and_reaches_the_floor_below_the_target() -> None:
    def rate(agreements: int, audits: int) -> float:
        return audit_rate(live_stats(WindowCounts(audits=audits, agreements=agreements)), POLICY)

    assert rate(15, 20) == 0.5  # width 0.35: at least twice the target
    assert rate(990, 1000) == 0.05  # width ≈ 0.012: under the target
    between = wilson_interval(80, 100).width  # ≈ 0.156: between the target and twice it
    assert rate(80, 100) == pytest.approx(0.05 + 0.45 * (between - 0.1) / 0.1)
    assert 0.05 < rate(80, 100) < 0.5


def test_selection_is_deterministic_per_run_id_and_follows_the_rate() -> None:
    ids = [f"run-{i}" for i in range(4000)]
    chosen = [run_id for run_id in ids if is_selected(run_id, 0.25)]
    assert chosen == [run_id for run_id in ids if is_selected(run_id, 0.25)]
    assert 0.22 < len(chosen) / len(ids) < 0.28
    # nested: a run audited at a low rate is audited at every higher one
    assert set(r for r in ids if is_selected(r, 0.1)) <= set(chosen)
    assert not any(is_selected(r, 0.0) for r in ids) and all(is_selected(r, 1.0) for r in ids)


@pytest.mark.parametrize(
    "values",
    [{"rate": 0.1, "floor": 0.2}, {"rate": 1.5}, {"target_width": 0}, {"window": 0}],
)
def test_the_policy_refuses_inconsistent_settings(values: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        AuditPolicy(**values)  # type: ignore[arg-type]
