"""Keep bulk work within the lead provider's limits: calls in flight, requests and tokens a minute.

The limits are the deployment's, not one process's: every worker takes an equal share of them,
re-divided whenever the number of live workers changes (workers count each other through their
heartbeats in the database). Within a process, :class:`LeadLimiter` is the orchestrator's
:class:`~orchestrator.lead_gate.LeadGate`, so it sees each HTTP call to the lead.

Rates are token buckets refilled continuously, holding at most one second's worth, so a burst
never exceeds what the provider's per-second enforcement allows. Tokens are only known after a
call: a call is admitted on an estimate, and its real count is settled afterwards — a bucket may
go into debt, which later calls wait out.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

RECHECK_S = 0.25
"""Longest a waiting call sleeps before looking again: limits change (workers come and go, debts
are settled) while it waits."""


@dataclass(frozen=True)
class LeadLimits:
    """The deployment's limits on calls to the lead; None: no limit."""

    concurrency: int | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None

    @property
    def any(self) -> bool:
        return any(
            limit is not None
            for limit in (self.concurrency, self.requests_per_minute, self.tokens_per_minute)
        )


class _Bucket:
    """A rate in units per minute, refilled continuously, holding one second's worth at most."""

    def __init__(self, per_minute: float, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._updated = clock()
        self.per_minute = per_minute
        self.level = self.capacity

    @property
    def rate(self) -> float:
        return self.per_minute / 60.0

    @property
    def capacity(self) -> float:
        return max(1.0, self.rate)

    def wait_s(self, amount: float) -> float:
        """Seconds until ``amount`` (at most a full bucket) is available."""
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._updated) * self.rate)
        self._updated = now
        missing = min(amount, self.capacity) - self.level
        return max(0.0, missing / self.rate)

    def spend(self, amount: float) -> None:
        self.level -= amount


class _Ticket:
    def __init__(self, estimated_tokens: int) -> None:
        self.estimated = estimated_tokens
        self.actual: int | None = None

    def used(self, tokens: int) -> None:
        self.actual = tokens


class LeadLimiter:
    """Admits lead calls within this process's share of :class:`LeadLimits`."""

    def __init__(self, limits: LeadLimits, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._workers = 1
        self._running = 0
        self._changed = asyncio.Condition()
        self._requests = self._bucket(limits.requests_per_minute, clock)
        self._tokens = self._bucket(limits.tokens_per_minute, clock)

    @staticmethod
    def _bucket(per_minute: int | None, clock: Callable[[], float]) -> _Bucket | None:
        return None if per_minute is None else _Bucket(per_minute, clock)

    @property
    def concurrency(self) -> int | None:
        """Calls this process may have in flight."""
        if self.limits.concurrency is None:
            return None
        return max(1, math.ceil(self.limits.concurrency / self._workers))

    def share_among(self, workers: int) -> None:
        """Take a ``1/workers`` share of every limit from now on."""
        self._workers = max(1, workers)
        for bucket, limit in (
            (self._requests, self.limits.requests_per_minute),
            (self._tokens, self.limits.tokens_per_minute),
        ):
            if bucket is not None and limit is not None:
                bucket.per_minute = limit / self._workers

    @asynccontextmanager
    async def call(self, estimated_tokens: int) -> AsyncIterator[_Ticket]:
        """Wait until a call of about ``estimated_tokens`` fits every limit; hold it while
        the call runs; settle its real token count afterwards."""
        async with self._changed:
            while (delay := self._delay(estimated_tokens)) > 0:
                with suppress(TimeoutError):
                    async with asyncio.timeout(min(delay, RECHECK_S)):
                        await self._changed.wait()
            self._running += 1
            if self._requests is not None:
                self._requests.spend(1)
            if self._tokens is not None:
                self._tokens.spend(estimated_tokens)
        ticket = _Ticket(estimated_tokens)
        try:
            yield ticket
        finally:
            async with self._changed:
                self._running -= 1
                if self._tokens is not None and ticket.actual is not None:
                    self._tokens.spend(ticket.actual - ticket.estimated)
                self._changed.notify()

    def _delay(self, estimated_tokens: int) -> float:
        """Seconds before a call may start: 0 now, infinite until a running call ends."""
        limit = self.concurrency
        if limit is not None and self._running >= limit:
            return math.inf
        return max(
            self._requests.wait_s(1) if self._requests is not None else 0.0,
            self._tokens.wait_s(estimated_tokens) if self._tokens is not None else 0.0,
        )
