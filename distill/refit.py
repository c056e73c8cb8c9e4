"""Re-fitting a served version's confidence threshold from its audited live answers.

The gate fitted the threshold once, on the validation split; traffic drifts, and a threshold
fitted on yesterday's requests accepts today's at another precision. The audits hold today's
evidence: answers the specialist gave, how confident it was, and whether the lead agreed. The
re-fit runs the gate's own :func:`~distill.gate.calibrate` on them — the lowest threshold whose
answers at or above it reach the gate's target precision over at least its minimum count —
so live thresholds follow the rule the gate's did, on live data only (never an eval set).

What the audits can see bounds what a re-fit can do: a cascade accepts only answers at or
above the current threshold, so cascade audits can raise it; ``slm`` answers (every
confidence) are what can lower it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from distill.config import GateConfig
from distill.gate import Outcome, acceptance, calibrate
from orchestrator.audits import AuditedAnswer


@dataclass(frozen=True, slots=True)
class Refit:
    """A new threshold for a version, and the audited figures it stands on."""

    threshold: float
    previous: float
    audited: int
    """Audited answers with a known confidence the fit read."""
    accepted: int
    """Of those, how many the new threshold accepts …"""
    precision: float | None
    """… and the share of them that agreed with the lead."""

    @property
    def reason(self) -> str:
        return (
            f"re-fitted on {self.audited} audited answers: {self.accepted} at or above "
            f"{self.threshold:.3f} agree with the lead at {self.precision or 0.0:.1%} "
            f"(was {self.previous:.3f})"
        )


def refit_threshold(
    answers: Sequence[AuditedAnswer],
    current: float,
    gate: GateConfig,
    *,
    min_change: float,
) -> Refit | None:
    """The threshold ``answers`` call for, or ``None`` when none reaches the gate's target over
    its minimum count (the drift verdict judges such a version) or the fit differs from
    ``current`` by less than ``min_change`` (noise, not news: every change reloads catalogs)."""
    outcomes = [
        Outcome(confidence=a.confidence, valid=True, score=a.score, agrees=a.agreed, tokens=0)
        for a in answers
    ]
    threshold = calibrate(outcomes, gate.target_precision, gate.min_accepted)
    if threshold is None or abs(threshold - current) < min_change:
        return None
    accepted = acceptance(outcomes, threshold)
    return Refit(
        threshold=threshold,
        previous=current,
        audited=len(outcomes),
        accepted=accepted.accepted,
        precision=accepted.precision,
    )
