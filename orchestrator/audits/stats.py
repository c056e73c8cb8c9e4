"""Live figures of one specialist version from its audits: precision with a Wilson interval,
and the share of its traffic that escalated or drew negative feedback.

Pure functions of counts, so the figures the CLI shows, the audit rate adapts to and (later)
demotion acts on are computed one way, and tested with known values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z_95 = 1.959963984540054
"""The standard normal quantile of a two-sided 95 % interval."""


@dataclass(frozen=True, slots=True)
class Interval:
    """A confidence interval for a proportion, in [0, 1]."""

    low: float
    high: float

    @property
    def width(self) -> float:
        return self.high - self.low


def wilson_interval(successes: int, trials: int, *, z: float = Z_95) -> Interval:
    """The Wilson score interval of ``successes`` in ``trials``.

    Wilson, not the normal approximation: with few audits, or a precision near 1 (what a good
    specialist has), the normal interval collapses to a point or leaves [0, 1]; Wilson's stays
    inside and keeps an honest width. No trials: nothing is known, [0, 1].

    Raises:
        ValueError: Counts are negative or ``successes`` exceeds ``trials``.
    """
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 ≤ successes ≤ trials, got {successes} of {trials}")
    if trials == 0:
        return Interval(0.0, 1.0)
    p = successes / trials
    z2 = z * z
    denominator = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denominator
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """What the store counted for one specialist version over the sliding window."""

    audits: int
    """Audits judged (agreement decided) in the window."""
    agreements: int
    """Of those, how many the specialist's answer agreed with the lead's."""
    attempts: int = 0
    """Cascade runs that asked the specialist first."""
    escalations: int = 0
    """Of those, how many the cascade handed to the lead."""
    answered: int = 0
    """Runs the specialist's answer was the answer of (``slm``, cascade-accepted)."""
    disliked: int = 0
    """Of those, how many drew negative feedback (a score below 0)."""


@dataclass(frozen=True, slots=True)
class LiveStats:
    """A specialist version's live figures; a rate is ``None`` where nothing was counted."""

    audits: int
    agreements: int
    precision: float | None
    interval: Interval
    escalation_rate: float | None
    negative_feedback_rate: float | None
    attempts: int = 0
    """Cascade attempts, the escalation rate's denominator …"""
    escalations: int = 0
    answered: int = 0
    """… and answers given, the negative-feedback rate's (decisions on a rate need its count)."""
    disliked: int = 0


def live_stats(counts: WindowCounts) -> LiveStats:
    """The figures of ``counts``: precision (agreements / audits) with its 95 % Wilson
    interval, escalation rate (escalations / cascade attempts), negative-feedback rate."""
    return LiveStats(
        audits=counts.audits,
        agreements=counts.agreements,
        precision=_rate(counts.agreements, counts.audits),
        interval=wilson_interval(counts.agreements, counts.audits),
        escalation_rate=_rate(counts.escalations, counts.attempts),
        negative_feedback_rate=_rate(counts.disliked, counts.answered),
        attempts=counts.attempts,
        escalations=counts.escalations,
        answered=counts.answered,
        disliked=counts.disliked,
    )


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None
