"""Live audits, off the hot path: judging agreement (:mod:`.agreement`) and draining the
audit queue with the lead (:mod:`.drain`). The queue and the figures live in
:mod:`orchestrator.audits`."""

from evals.audits.agreement import AgreementJudge, judge_for
from evals.audits.drain import AuditDrain

__all__ = ["AgreementJudge", "AuditDrain", "judge_for"]
