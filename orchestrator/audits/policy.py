"""How many answers are audited: the adaptive audit rate, and which runs it selects.

A version the audits know little about (few audits, a wide interval) is audited at the
ceiling; as its interval tightens the rate falls, reaching the floor once the interval is
narrower than the target. Selection hashes the run id, so the same run is always selected or
always not at a given rate: reproducible, and free of any shared random state.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from orchestrator.audits.stats import LiveStats


@dataclass(frozen=True, slots=True)
class AuditPolicy:
    """The audit settings, as plain values (the edge builds it from ``UNDERSTUDY_AUDIT_*``)."""

    rate: float = 0.1
    """The ceiling: the share of unchecked answers audited for a version little is known
    about; 0 turns audits off."""
    floor: float = 0.01
    """The share still audited once the interval is tight: drift must stay visible."""
    min_audits: int = 30
    """Fewer audits than this in the window keep a version at the ceiling."""
    target_width: float = 0.1
    """Interval width at (and below) which the floor applies."""
    window: int = 500
    """The sliding window: at most this many of a version's newest audits count …"""
    window_days: float = 30.0
    """… and only those finished within this many days."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.floor <= self.rate <= 1.0:
            raise ValueError(f"need 0 ≤ floor ≤ rate ≤ 1, got {self.floor} and {self.rate}")
        if self.target_width <= 0 or self.min_audits < 0 or self.window < 1:
            raise ValueError("target_width must be > 0, min_audits ≥ 0 and window ≥ 1")
        if self.window_days <= 0:
            raise ValueError(f"window_days must be > 0, got {self.window_days}")


def audit_rate(stats: LiveStats | None, policy: AuditPolicy) -> float:
    """The share of a version's unchecked answers to audit, given what its audits show.

    Ceiling with no stats or fewer than ``min_audits``; floor once the interval's width is at
    most ``target_width``; in between, linear in the width, reaching the ceiling at twice the
    target — so the rate falls steadily as evidence accumulates instead of jumping.
    """
    if stats is None or stats.audits < policy.min_audits:
        return policy.rate
    excess = (stats.interval.width - policy.target_width) / policy.target_width
    share = min(1.0, max(0.0, excess))
    return policy.floor + (policy.rate - policy.floor) * share


def is_selected(run_id: str, rate: float) -> bool:
    """Whether ``run_id`` falls in the audited share ``rate``: its SHA-256 read as a number in
    [0, 1), below ``rate``. Deterministic per run id."""
    if rate <= 0.0:
        return False
    point = int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:8], "big") / 2**64
    return point < rate
