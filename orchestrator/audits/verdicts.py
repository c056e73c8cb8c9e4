"""What the live figures decide: a canary's verdict and an active version's drift verdict.

Pure functions of :class:`~orchestrator.audits.stats.LiveStats`, so the steward that applies
them (:mod:`distill.steward`), the simulations that prove them and the benchmark that prices
them run the same rule.

The rule, and why it survives being looked at again and again
---------------------------------------------------------------
The figures are read after every drained batch, for as long as a version is served, so each
rule is a *repeated* test: a rule with a 2.5 % false alarm per look would, over hundreds of
looks, demote nearly every good version. Three choices keep false alarms rare without a
sequential-test machinery the operator would have to tune:

1. **Decisions use their own, stricter interval** (:attr:`LifecyclePolicy.confidence`, 99 %
   one-sided by default, z ≈ 2.33) than the 95 % interval the CLI shows. Looks are strongly
   correlated — each adds one audit to the same window — so the per-look error does not add up
   look by look; a stricter z covers the few effectively independent looks a window holds.
2. **No decision before** :attr:`~LifecyclePolicy.min_audits` audits (and
   :attr:`~LifecyclePolicy.min_runs` runs for a run rate): the first looks, on a handful of
   audits, are where an interval is least trustworthy and a run of bad luck most likely.
3. **A margin between the truth and the bar**: a version's target is the gate's bar, which a
   version that passed the gate clears with room, so a good version's interval sits well above
   it and a false demotion needs many standard deviations of bad luck, not one.

A sequential probability ratio test would spend fewer audits per decision, but it needs an
alternative hypothesis (how bad is "bad") that nobody can state for an unknown drift, and it
stops looking once it decides; the interval rule keeps watching with the window forever.
``tests/orchestrator/test_lifecycle_simulation.py`` measures the result with a look after
*every* audit (the most looks any schedule makes): false demotion of a 95 %-agreeing version
against a 90 % bar stays under 5 % over long runs, and a drop to 60 % is caught within a bound
of audits; ``benchmarks/audit_detection.py`` prices that bound against the audit rate.

Run rates (escalations, negative feedback) demote on their interval's *lower* bound passing
the limit: the version must be confidently worse than allowed, by the same z.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal

from orchestrator.audits.stats import LiveStats, wilson_interval

CanaryAction = Literal["pass", "reject", "wait"]
DriftAction = Literal["demote", "keep"]


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    """What live figures must show (the edge builds it from ``UNDERSTUDY_LIFECYCLE_*`` and the
    gate's settings)."""

    target_precision: float = 0.9
    """The bar audited precision is held to: the gate's, the share of accepted answers that
    agree with the lead it lets a version through with (its target less its tolerance)."""
    confidence: float = 0.99
    """One-sided confidence of every decision bound (see the module docstring)."""
    min_audits: int = 30
    """Audits in the window before a precision decision."""
    max_canary_audits: int = 1000
    """A canary whose lower bound has not cleared the bar after this many audits is rejected:
    a version the audits cannot tell from the bar has not shown it is better. Twice the
    default window: at 500, one good (95 %) candidate in about 25 seeds was still short of a
    99 % bound over 90 % when the count ran out."""
    max_negative_feedback_rate: float = 0.2
    """Share of a version's answers drawing negative feedback above which it is demoted."""
    max_escalation_rate: float = 0.8
    """Share of cascade attempts escalated to the lead above which it is demoted: a version
    the cascade rarely accepts costs a specialist call on top of the lead."""
    min_runs: int = 50
    """Runs counted (answers, or cascade attempts) before a run rate decides anything."""

    def __post_init__(self) -> None:
        for name in ("target_precision", "max_negative_feedback_rate", "max_escalation_rate"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if not 0.5 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0.5, 1), got {self.confidence}")
        if self.min_audits < 1 or self.min_runs < 1:
            raise ValueError("min_audits and min_runs must be ≥ 1")
        if self.max_canary_audits < self.min_audits:
            raise ValueError("max_canary_audits must be at least min_audits")

    @property
    def z(self) -> float:
        """The normal quantile of :attr:`confidence`."""
        return NormalDist().inv_cdf(self.confidence)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A decision, why, and the figures it was taken on (kept with the registry event)."""

    action: CanaryAction | DriftAction
    reason: str
    figures: dict[str, Any]


def canary_verdict(stats: LiveStats, policy: LifecyclePolicy) -> Verdict:
    """``pass`` once the audited precision's lower bound clears the bar, ``reject`` once its
    upper bound falls below it (or after :attr:`~LifecyclePolicy.max_canary_audits` without a
    pass), else ``wait``.

    Only audits count: runs do not record which version answered, so a canary's run rates
    would mix in the active version's traffic.
    """
    figures = _precision_figures(stats, policy)
    target = policy.target_precision
    if stats.audits < policy.min_audits:
        return Verdict("wait", f"{stats.audits} of {policy.min_audits} audits", figures)
    low, high = figures["low"], figures["high"]
    if low > target:
        return Verdict("pass", f"precision lower bound {low:.3f} clears {target:.3f}", figures)
    if high < target:
        return Verdict("reject", f"precision upper bound {high:.3f} is below {target:.3f}", figures)
    if stats.audits >= policy.max_canary_audits:
        return Verdict(
            "reject",
            f"precision lower bound {low:.3f} still below {target:.3f} after {stats.audits} audits",
            figures,
        )
    return Verdict("wait", f"precision in [{low:.3f}, {high:.3f}] around {target:.3f}", figures)


def drift_verdict(stats: LiveStats, policy: LifecyclePolicy) -> Verdict:
    """``demote`` when the audited precision's upper bound falls below the bar, or a run
    rate's lower bound passes its limit (each with its minimum count), else ``keep``; the
    reason names the figure and its values."""
    figures = _precision_figures(stats, policy)
    target = policy.target_precision
    if stats.audits >= policy.min_audits and figures["high"] < target:
        high = figures["high"]
        return Verdict(
            "demote",
            f"precision upper bound {high:.3f} is below {target:.3f} "
            f"({stats.agreements} of {stats.audits} audits agreed)",
            figures,
        )
    rates = (
        (
            "negative feedback rate",
            stats.disliked,
            stats.answered,
            policy.max_negative_feedback_rate,
        ),
        ("escalation rate", stats.escalations, stats.attempts, policy.max_escalation_rate),
    )
    for name, part, whole, limit in rates:
        if whole < policy.min_runs:
            continue
        low = wilson_interval(part, whole, z=policy.z).low
        figures[name.replace(" ", "_")] = {"count": part, "of": whole, "low": low, "limit": limit}
        if low > limit:
            return Verdict(
                "demote",
                f"{name} lower bound {low:.3f} is above {limit:.3f} ({part} of {whole} runs)",
                figures,
            )
    return Verdict("keep", "within the bar and the limits", figures)


def _precision_figures(stats: LiveStats, policy: LifecyclePolicy) -> dict[str, Any]:
    interval = wilson_interval(stats.agreements, stats.audits, z=policy.z)
    return {
        "audits": stats.audits,
        "agreements": stats.agreements,
        "precision": stats.precision,
        "low": interval.low,
        "high": interval.high,
        "confidence": policy.confidence,
        "target_precision": policy.target_precision,
    }
