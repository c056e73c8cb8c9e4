"""The canary choice: deterministic per run id, close to each canary's share, independent of
the audit choice, and tiered so one point serves every canary."""

from __future__ import annotations

import pytest

from orchestrator.audits.policy import is_selected
from orchestrator.canary import CanaryTier, Lineups, canary_point, check_tiers
from orchestrator.run_state import Lineup
from specialists.catalog import Catalog

RUNS = [f"run-{n}" for n in range(20_000)]


def lineup(*names: str) -> Lineup:
    default = Catalog.default()
    return Lineup(Catalog(default.get(name) for name in names), None, None)


def test_the_choice_is_deterministic_and_close_to_the_share() -> None:
    main, canary = lineup("math"), lineup("math", "email")
    lineups = Lineups(main, ((0.1, canary),))
    chosen = [lineups.for_run(run_id) is canary for run_id in RUNS]
    assert chosen == [lineups.for_run(run_id) is canary for run_id in RUNS]  # same run, same pick
    assert abs(sum(chosen) / len(RUNS) - 0.1) < 0.01  # binomial sd ≈ 0.002
    assert Lineups(main).for_run("any") is main  # no canary: no hash at all


def test_the_canary_choice_is_independent_of_the_audit_choice() -> None:
    """Audits must sample canary runs at the audit rate, not all or none of them: the two
    choices hash the run id differently."""
    canary = [canary_point(run_id) < 0.2 for run_id in RUNS]
    audited = [is_selected(run_id, 0.2) for run_id in RUNS]
    both = sum(c and a for c, a in zip(canary, audited, strict=True)) / len(RUNS)
    assert abs(both - 0.2 * 0.2) < 0.01
    assert canary != audited


def test_tiers_give_each_canary_its_own_share() -> None:
    """Tier 1 holds the canary of largest share, tier 2 adds the next: a run below 0.05 gets
    both canaries, one between 0.05 and 0.3 only the first."""
    main, first, both = lineup("math"), lineup("math", "email"), lineup("math", "email", "code")
    lineups = Lineups(main, ((0.3, first), (0.05, both)))
    picks = [lineups.for_run(run_id) for run_id in RUNS]
    email = sum(p is not main for p in picks) / len(RUNS)
    code = sum(p is both for p in picks) / len(RUNS)
    assert abs(email - 0.3) < 0.015 and abs(code - 0.05) < 0.008
    assert lineups.catalogs == (main.catalog, first.catalog, both.catalog)


@pytest.mark.parametrize("shares", [[0.1, 0.2], [0.0], [1.0]])
def test_tiers_out_of_order_or_out_of_range_are_refused(shares: list[float]) -> None:
    with pytest.raises(ValueError, match="largest first"):
        check_tiers([CanaryTier(share, Catalog.default(), None) for share in shares])
