"""A specialist version's life under live audits, simulated: a scripted stream of answers
whose agreement with the lead is drawn at a set rate, audited at the adaptive rate, judged by
the verdicts after every audit.

Everything but the traffic is the real code: selection (:func:`~.policy.is_selected` on the
run id), the audit rate (:func:`~.policy.audit_rate` from the window's figures), the sliding
window of :attr:`~.policy.AuditPolicy.window` audits, the figures (:func:`~.stats.live_stats`)
and the verdicts (:mod:`.verdicts`). The canary's share is chosen as serving chooses it, by a
hash of the request, and a canary is audited at the ceiling rate (issue 14: "high for a new or
canary version"). What the simulation leaves out: the serving processes' ``refresh_s``
delay in seeing a new rate (the rate here follows every audit), and time (the window's
``window_days``). ``tests/orchestrator/test_lifecycle_simulation.py`` proves the decision rule
with it and ``benchmarks/audit_detection.py`` prices detection against the audit rate.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from typing import Literal

from orchestrator.audits.policy import AuditPolicy, audit_rate, is_selected
from orchestrator.audits.stats import LiveStats, WindowCounts, live_stats
from orchestrator.audits.verdicts import LifecyclePolicy, canary_verdict, drift_verdict

Stage = Literal["canary", "active", "rejected", "demoted"]


@dataclass(frozen=True, slots=True)
class ScriptedVersion:
    """How often a version's answers agree with the lead, and when that changes."""

    agreement: float
    drifted: float | None = None
    """Agreement after the drift; ``None``: it never drifts."""
    drift_after_audits: int = 0
    """Audits the version has had when the drift begins."""
    negative_feedback: float = 0.02
    """Share of its answers that draw negative feedback."""


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """How one simulated version fared."""

    stage: Stage
    """Where it ended: still ``canary`` or ``active`` when the requests ran out."""
    requests: int
    """Eligible requests seen, whoever answered them."""
    canary_requests: int
    """Requests seen while it was a canary, and of those …"""
    canary_answered: int
    """… how many it answered (the rest went to the previous version or the lead)."""
    audits: int
    """Audits of its answers, in all."""
    decided_at_audit: int | None
    """Its audit count when the canary verdict or the demotion came."""
    drift_at: tuple[int, int] | None
    """(audits, requests) when its agreement changed."""
    demoted_at: tuple[int, int] | None
    """(audits, requests) when it was demoted."""

    @property
    def delay(self) -> tuple[int, int] | None:
        """(audits, requests) from the drift to the demotion; ``None`` unless both happened
        in that order."""
        if self.drift_at is None or self.demoted_at is None:
            return None
        return self.demoted_at[0] - self.drift_at[0], self.demoted_at[1] - self.drift_at[1]


class _Watch:
    """A version's sliding window of audits, its figures and its current audit rate."""

    def __init__(self, audits: AuditPolicy) -> None:
        self.policy = audits
        self.window: deque[bool] = deque(maxlen=audits.window)
        self.agreements = 0
        self.audits = 0
        self.answered = 0
        self.disliked = 0
        self.stats: LiveStats = live_stats(WindowCounts(0, 0))
        self.rate = audit_rate(None, audits)

    def answer(self, run_id: str, agreed: bool, disliked: bool, *, canary: bool) -> bool:
        """Count an answer; audit it if its run id is selected at the current rate (the
        ceiling for a canary, which must prove itself on its small share quickly)."""
        self.answered += 1
        self.disliked += disliked
        if not is_selected(run_id, self.rate):
            return False
        if len(self.window) == self.window.maxlen:
            self.agreements -= self.window[0]
        self.window.append(agreed)
        self.agreements += agreed
        self.audits += 1
        self.stats = live_stats(
            WindowCounts(
                audits=len(self.window),
                agreements=self.agreements,
                answered=self.answered,
                disliked=self.disliked,
            )
        )
        self.rate = self.policy.rate if canary else audit_rate(self.stats, self.policy)
        return True


def in_canary_share(run_id: str, share: float) -> bool:
    """Whether a request goes to the canary: a hash of its id, salted apart from the audit
    selection's so the two choices are independent."""
    return is_selected(f"canary:{run_id}", share)


def simulate(
    version: ScriptedVersion,
    *,
    seed: int,
    requests: int,
    audits: AuditPolicy,
    policy: LifecyclePolicy,
    canary_share: float | None = None,
) -> Lifecycle:
    """Run ``requests`` eligible requests past ``version``: first as a canary answering
    ``canary_share`` of them (``None``: it starts active), then, once passed, as the active
    version answering all; a verdict is taken after every audit. Stops at a rejection or a
    demotion."""
    draw = random.Random(seed)
    watch = _Watch(audits)
    stage: Stage = "canary" if canary_share is not None else "active"
    canary_requests = canary_answered = 0
    decided_at: int | None = None
    drift_at: tuple[int, int] | None = None
    demoted_at: tuple[int, int] | None = None
    seen = 0
    for seen in range(1, requests + 1):
        run_id = f"s{seed}-r{seen}"
        if stage == "canary":
            canary_requests += 1
            assert canary_share is not None
            if not in_canary_share(run_id, canary_share):
                continue
            canary_answered += 1
        drifting = version.drifted is not None and watch.audits >= version.drift_after_audits
        if drifting and drift_at is None:
            drift_at = (watch.audits, seen)
        agreement = (
            version.drifted if drifting and version.drifted is not None else version.agreement
        )
        agreed = draw.random() < agreement
        disliked = draw.random() < version.negative_feedback
        if not watch.answer(run_id, agreed, disliked, canary=stage == "canary"):
            continue
        if stage == "canary":
            action = canary_verdict(watch.stats, policy).action
            if action != "wait":
                decided_at = watch.audits
                stage = "active" if action == "pass" else "rejected"
        elif drift_verdict(watch.stats, policy).action == "demote":
            decided_at = watch.audits
            demoted_at = (watch.audits, seen)
            stage = "demoted"
        if stage in ("rejected", "demoted"):
            break
    return Lifecycle(
        stage=stage,
        requests=seen,
        canary_requests=canary_requests,
        canary_answered=canary_answered,
        audits=watch.audits,
        decided_at_audit=decided_at,
        drift_at=drift_at,
        demoted_at=demoted_at,
    )
