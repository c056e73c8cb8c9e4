"""Live audits of specialist answers no lead checked (see ARCHITECTURE.md, "Live audits").

On the hot path: which runs answered unchecked (:mod:`.candidates`) and whether this one is
audited (:mod:`.policy`, :class:`AuditSampler`). Off it, in ``understudy worker``: the queue
(:class:`AuditStore`) the audit drain (:mod:`evals.audits`) empties, and the live figures per
specialist version (:mod:`.stats`).
"""

from orchestrator.audits.candidates import audit_candidate, version_label
from orchestrator.audits.figures import ServedVersion, live_figures
from orchestrator.audits.policy import AuditPolicy, audit_rate, is_selected
from orchestrator.audits.records import AuditCandidate, AuditVerdict, ClaimedAudit
from orchestrator.audits.sampler import AuditSampler
from orchestrator.audits.stats import (
    Interval,
    LiveStats,
    WindowCounts,
    live_stats,
    wilson_interval,
)
from orchestrator.audits.store import AuditStore, AuditSummary

__all__ = [
    "AuditCandidate",
    "AuditPolicy",
    "AuditSampler",
    "AuditStore",
    "AuditSummary",
    "AuditVerdict",
    "ClaimedAudit",
    "Interval",
    "LiveStats",
    "ServedVersion",
    "WindowCounts",
    "audit_candidate",
    "audit_rate",
    "is_selected",
    "live_figures",
    "live_stats",
    "version_label",
    "wilson_interval",
]
