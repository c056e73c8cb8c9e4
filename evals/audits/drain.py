"""The audit drain: ``understudy worker``'s loop that re-asks the lead what a specialist
answered unchecked, and records whether the two agree.

Off the hot path and inside the lead's limits: the lead is asked through an orchestrator
(``llm`` mode) whose lead calls pass the worker's lead gate and the run budget, and which
records no transcript — an audit is not traffic, and its cost is kept on the audit as audit
spend instead. A lead failure another try can mend (429, 5xx, timeouts, a stopping worker)
puts the audit back in the queue, up to ``max_attempts`` claims; one the same request would
meet again (a refusal, the budget) ends it ``failed``, counted in no figure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from evals.audits.agreement import judge_for
from orchestrator.audits import AuditStore, AuditVerdict, ClaimedAudit
from orchestrator.modes import Mode
from orchestrator.run import Orchestrator
from specialists.errors import UnderstudyError

logger = logging.getLogger(__name__)


class AuditDrain:
    """Claims queued audits one at a time and settles each.

    Args:
        store: The audit queue.
        orchestrator: Asks the lead; built without a transcript store or audit sampler.
        worker_id: Whose claims these are.
        lease_s: How long a claim lasts; longer than a run's time budget.
        min_rouge: ROUGE-L at which text answers agree.
        max_attempts: Claims after which a retryable lead failure ends the audit ``failed``
            instead: a lead that keeps failing on one request must not cost without end.
        poll_s: How long an idle drain waits before looking again.
    """

    def __init__(
        self,
        store: AuditStore,
        orchestrator: Orchestrator,
        *,
        worker_id: str,
        lease_s: float,
        min_rouge: float,
        max_attempts: int = 3,
        poll_s: float = 1.0,
    ) -> None:
        if orchestrator.store is not None or orchestrator.audits is not None:
            raise ValueError("the audit drain's orchestrator must record and audit nothing")
        self.store = store
        self.orchestrator = orchestrator
        self.worker_id = worker_id
        self.lease_s = lease_s
        self.min_rouge = min_rouge
        self.max_attempts = max_attempts
        self.poll_s = poll_s

    async def run(self, stop: asyncio.Event) -> None:
        """Drain the queue until ``stop`` is set."""
        while not stop.is_set():
            if not await self.drain_one(stop):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.poll_s)

    async def drain_one(self, stop: asyncio.Event | None = None) -> bool:
        """Claim and settle one audit; ``False`` when none was queued."""
        claimed = await self.store.claim(self.worker_id, lease_s=self.lease_s)
        if claimed is None:
            return False
        await self._audit(claimed, stop)
        return True

    async def _audit(self, audit: ClaimedAudit, stop: asyncio.Event | None) -> None:
        candidate = audit.candidate
        result = await self.orchestrator.run(candidate.messages, Mode.llm, stop=stop)
        if result.failure is not None or result.answer is None:
            failure = result.failure
            message = failure.message if failure else "the lead gave no answer"
            retryable = failure is not None and failure.kind.retryable
            if retryable and audit.attempts < self.max_attempts:
                await self.store.retry(audit, result.cost_usd, message)
            else:
                await self.store.give_up(audit, result.cost_usd, message)
            return
        judge = judge_for(candidate.judge, min_rouge=self.min_rouge)
        request = candidate.messages[-1]["content"]
        try:
            agreed, score = await asyncio.to_thread(
                judge.judge, request, candidate.answer, result.answer
            )
        except UnderstudyError as exc:  # no sandbox, a missing extra: say so, count nothing
            logger.warning("audit %s could not be judged: %s", audit.id, exc)
            await self.store.give_up(audit, result.cost_usd, f"not judged: {exc}")
            return
        verdict = AuditVerdict(
            lead_answer=result.answer,
            agreed=agreed,
            score=score.value,
            details={"judge": judge.name, **score.details},
        )
        if not await self.store.settle(audit, verdict, result.cost_usd):
            logger.warning("audit %s was taken over before it was settled", audit.id)
