"""Issue 14's acceptance simulations: the real audit rate, window, figures and verdicts on a
scripted stream of answers whose agreement with the lead is drawn per seed (see
:mod:`orchestrator.audits.simulation`). A verdict is taken after every audit, the most looks
any steward schedule makes, so the false-alarm figures hold for every schedule."""

from __future__ import annotations

from statistics import mean

import pytest

from orchestrator.audits.policy import AuditPolicy
from orchestrator.audits.simulation import ScriptedVersion, in_canary_share, simulate
from orchestrator.audits.stats import LiveStats, WindowCounts, live_stats
from orchestrator.audits.verdicts import LifecyclePolicy, canary_verdict, drift_verdict

SEEDS = range(24)
AUDITS = AuditPolicy()  # the settings' defaults: 10 % ceiling, 1 % floor, window of 500
POLICY = LifecyclePolicy()  # bar 0.90: the gate's default target 0.95 less its tolerance 0.05
SHARE = 0.1


def test_a_good_specialist_passes_canary_and_is_not_demoted_over_a_long_run() -> None:
    runs = [
        simulate(
            ScriptedVersion(0.95),
            seed=seed,
            requests=100_000,
            audits=AUDITS,
            policy=POLICY,
            canary_share=SHARE,
        )
        for seed in SEEDS
    ]
    demoted = sum(run.stage == "demoted" for run in runs) / len(runs)
    rejected = sum(run.stage == "rejected" for run in runs)
    assert demoted <= 0.05
    assert rejected == 0
    assert sum(run.stage == "active" for run in runs) >= len(runs) - 1
    # It went on being audited long after the canary: the long run is real.
    assert min(run.audits for run in runs if run.stage == "active") > AUDITS.window


def test_agreement_falling_to_60_percent_is_demoted_within_a_bound_of_audits() -> None:
    runs = [
        simulate(
            ScriptedVersion(0.95, drifted=0.60, drift_after_audits=AUDITS.window),
            seed=seed,
            requests=400_000,
            audits=AUDITS,
            policy=POLICY,
        )
        for seed in SEEDS
    ]
    delays = [run.delay for run in runs]
    assert all(delay is not None for delay in delays), [run.stage for run in runs]
    audits = [delay[0] for delay in delays if delay is not None]
    requests = [delay[1] for delay in delays if delay is not None]
    # Measured at 115 mean, 168 worst audits (11.9k / 16.4k requests); the bound leaves room.
    assert max(audits) <= 250
    assert mean(audits) <= 150
    assert max(requests) <= 30_000


def test_a_candidate_below_the_gate_is_rejected_in_canary_having_answered_only_its_share() -> None:
    for seed in SEEDS:
        run = simulate(
            ScriptedVersion(0.75),
            seed=seed,
            requests=100_000,
            audits=AUDITS,
            policy=POLICY,
            canary_share=SHARE,
        )
        assert run.stage == "rejected"
        assert run.decided_at_audit is not None and run.decided_at_audit <= 120
        expected = sum(
            in_canary_share(f"s{seed}-r{n}", SHARE) for n in range(1, run.canary_requests + 1)
        )
        assert run.canary_answered == expected  # exactly the hashed share, nothing more
        assert run.canary_answered <= SHARE * run.canary_requests * 1.25
        assert run.requests == run.canary_requests  # it never served past its canary


def _stats(audits: int, agreements: int, **runs: int) -> LiveStats:
    return live_stats(WindowCounts(audits=audits, agreements=agreements, **runs))


def test_canary_waits_below_the_minimum_then_passes_or_rejects_on_its_bounds() -> None:
    assert canary_verdict(_stats(29, 29), POLICY).action == "wait"
    assert canary_verdict(_stats(200, 196), POLICY).action == "pass"
    assert canary_verdict(_stats(100, 70), POLICY).action == "reject"
    waiting = canary_verdict(_stats(100, 91), POLICY)
    assert waiting.action == "wait"
    assert waiting.figures["low"] < 0.9 < waiting.figures["high"]
    stuck = canary_verdict(_stats(POLICY.max_canary_audits, 910), POLICY)
    assert stuck.action == "reject" and "after 1000 audits" in stuck.reason


def test_drift_names_the_figure_that_demotes() -> None:
    assert drift_verdict(_stats(500, 475), POLICY).action == "keep"
    precision = drift_verdict(_stats(200, 150), POLICY)
    assert precision.action == "demote" and precision.reason.startswith("precision upper bound")
    feedback = drift_verdict(_stats(500, 480, answered=400, disliked=160), POLICY)
    assert feedback.action == "demote" and feedback.reason.startswith("negative feedback rate")
    assert feedback.figures["negative_feedback_rate"]["count"] == 160
    escalations = drift_verdict(_stats(500, 480, attempts=1000, escalations=950), POLICY)
    assert escalations.action == "demote" and escalations.reason.startswith("escalation rate")
    # Too few runs: a bad rate on 10 answers decides nothing.
    assert drift_verdict(_stats(500, 480, answered=10, disliked=9), POLICY).action == "keep"


@pytest.mark.parametrize(
    "settings", [{"confidence": 0.5}, {"min_audits": 0}, {"max_canary_audits": 10}]
)
def test_the_policy_refuses_settings_that_decide_nothing_or_on_nothing(
    settings: dict[str, float],
) -> None:
    with pytest.raises(ValueError):
        LifecyclePolicy(**settings)  # type: ignore[arg-type]
