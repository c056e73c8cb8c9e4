"""Live audits of specialist answers no lead checked (see ARCHITECTURE.md, "Live audits").

On the hot path: which runs answered unchecked (:mod:`.candidates`) and whether this one is
audited (:mod:`.policy`, :class:`AuditSampler`). Off it, in ``understudy worker``: the queue
(:class:`AuditStore`) the audit drain (:mod:`evals.audits`) empties, and the live figures per
specialist version (:mod:`.stats`) and what they decide (:mod:`.verdicts`: canary and drift).
"""

from orchestrator.audits.candidates import audit_candidate, version_label
from orchestrator.audits.figures import ServedVersion, live_figures, version_figures
from orchestrator.audits.policy import AuditPolicy, audit_rate, is_selected
from orchestrator.audits.records import AuditCandidate, AuditedAnswer, AuditVerdict, ClaimedAudit
from orchestrator.audits.sampler import AuditSampler
from orchestrator.audits.stats import (
    Interval,
    LiveStats,
    WindowCounts,
    live_stats,
    wilson_interval,
)
from orchestrator.audits.store import AuditStore, AuditSummary
from orchestrator.audits.verdicts import (
    LifecyclePolicy,
    Verdict,
    canary_verdict,
    drift_verdict,
)

__all__ = [
    "AuditCandidate",
    "AuditPolicy",
    "AuditSampler",
    "AuditStore",
    "AuditSummary",
    "AuditVerdict",
    "AuditedAnswer",
    "ClaimedAudit",
    "Interval",
    "LifecyclePolicy",
    "LiveStats",
    "ServedVersion",
    "Verdict",
    "WindowCounts",
    "audit_candidate",
    "audit_rate",
    "canary_verdict",
    "drift_verdict",
    "is_selected",
    "live_figures",
    "live_stats",
    "version_figures",
    "version_label",
    "wilson_interval",
]
