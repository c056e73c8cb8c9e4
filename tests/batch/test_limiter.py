"""The lead limiter: calls in flight, requests and tokens a minute, shared among workers — on a
frozen clock, so nothing here depends on how fast the machine is."""

from __future__ import annotations

import asyncio

from serving.batch.limiter import LeadLimiter, LeadLimits


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_no_more_calls_in_flight_than_the_concurrency_limit() -> None:
    limiter = LeadLimiter(LeadLimits(concurrency=2))
    entered = 0
    peak = 0
    release = asyncio.Event()

    async def call() -> None:
        nonlocal entered, peak
        async with limiter.call(10):
            entered += 1
            peak = max(peak, entered)
            await release.wait()
            entered -= 1

    tasks = [asyncio.create_task(call()) for _ in range(5)]
    await asyncio.sleep(0.05)
    assert entered == 2
    release.set()
    await asyncio.gather(*tasks)
    assert peak == 2


async def test_requests_per_minute_allow_a_second_of_burst_then_wait_for_the_clock() -> None:
    clock = Clock()
    limiter = LeadLimiter(LeadLimits(requests_per_minute=180), clock=clock)  # 3 a second
    done = 0

    async def call() -> None:
        nonlocal done
        async with limiter.call(1):
            done += 1

    tasks = [asyncio.create_task(call()) for _ in range(5)]
    await asyncio.sleep(0.1)
    assert done == 3  # a second's worth, then the frozen clock holds the rest
    clock.now += 2 / 3  # two more requests' worth of time
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert done == 5


async def test_tokens_are_settled_after_the_call_and_debt_is_waited_out() -> None:
    clock = Clock()
    limiter = LeadLimiter(LeadLimits(tokens_per_minute=6000), clock=clock)  # 100 a second
    async with limiter.call(50) as ticket:
        ticket.used(500)  # far more than estimated: 400 tokens of debt now
    waiting = asyncio.create_task(_enter(limiter, 50))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    clock.now += 4.0  # refills the debt, not yet the next call
    await asyncio.sleep(0.1)
    assert not waiting.done()
    clock.now += 0.5
    await asyncio.wait_for(waiting, 5)


async def _enter(limiter: LeadLimiter, tokens: int) -> None:
    async with limiter.call(tokens):
        pass


def test_limits_are_divided_among_live_workers() -> None:
    limiter = LeadLimiter(LeadLimits(concurrency=5, requests_per_minute=600))
    assert limiter.concurrency == 5
    limiter.share_among(2)
    assert limiter.concurrency == 3  # rounded up: a worker never gets 0
    limiter.share_among(10)
    assert limiter.concurrency == 1
    assert not LeadLimits().any and LeadLimits(tokens_per_minute=1).any
