"""On the hot path: enqueue the audited share of a run's unchecked specialist answer.

Cheap by construction: selection is a hash of the run id against a rate cached per version
(the window's counts are read at most once per ``refresh_s``, by one query for every version),
and a selected answer costs one insert. A database that refuses the insert costs the audit
sample, never the run: the run is answered and recorded already, and the loss is logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from database import StoreError
from orchestrator.audits.policy import AuditPolicy, audit_rate, is_selected
from orchestrator.audits.records import AuditCandidate
from orchestrator.audits.stats import live_stats
from orchestrator.audits.store import AuditStore, VersionKey

logger = logging.getLogger(__name__)


class AuditSampler:
    """Decides, per run, whether its unchecked answer is audited, and queues it if so.

    Args:
        store: The audit queue.
        policy: Rates and window.
        refresh_s: How long the per-version rates are reused before the counts are read again.
        clock: Monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        store: AuditStore,
        policy: AuditPolicy,
        *,
        refresh_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.policy = policy
        self.refresh_s = refresh_s
        self._clock = clock
        self._rates: dict[VersionKey, float] = {}
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    async def rate(self, specialist: str, version: str) -> float:
        """The current audit rate of a version (the ceiling for one never audited)."""
        if self._stale():
            async with self._lock:
                if self._stale():
                    await self._refresh()
        return self._rates.get((specialist, version), self.policy.rate)

    async def consider(self, candidate: AuditCandidate) -> bool:
        """Queue ``candidate`` if its run id falls in its version's audited share; whether it
        was queued."""
        try:
            rate = await self.rate(candidate.specialist, candidate.version)
            if not is_selected(candidate.run_id, rate):
                return False
            return await self.store.enqueue(candidate)
        except StoreError as exc:
            logger.warning("run %s was not queued for audit: %s", candidate.run_id, exc)
            return False

    def _stale(self) -> bool:
        return self._read_at is None or self._clock() - self._read_at >= self.refresh_s

    async def _refresh(self) -> None:
        counts = await self.store.window_counts(
            window=self.policy.window, days=self.policy.window_days
        )
        self._rates = {
            key: audit_rate(live_stats(value), self.policy) for key, value in counts.items()
        }
        self._read_at = self._clock()
