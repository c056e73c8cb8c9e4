"""A batch worker: claims items, keeps ``concurrency`` of them running, commits each result;
beside them, its :class:`~serving.batch.validator.Validator` checks the input of new jobs.

One feeder claims items in groups (so the database sees one claim per group, not one per item)
into a local queue holding up to ``concurrency`` more than are running, so a slot that frees up
starts its next item at once; ``concurrency`` slots take items from the queue and run them; a
committer commits each result as soon as it is known, together with those that arrived while
its previous commit was under way. A heartbeat renews the worker's leases (the queued items'
too) and re-divides the lead's limits among the live workers.

Stopping — ``stop`` set, Ctrl-C, an error — puts the items still held back to pending at once;
a ``kill -9`` cannot, and then the items wait out their lease before another worker takes them.
If the database goes away, the worker waits for it (backing off) rather than losing results —
and a stop still stops it: the waits end when ``stop`` is set, and what the worker holds waits
out its lease.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from functools import partial
from pathlib import Path
from typing import TypeVar

from tenacity import AsyncRetrying, before_sleep_log, retry_if_exception_type, wait_exponential

from database import StoreError
from orchestrator.run import Orchestrator
from serving.batch.limiter import LeadLimiter, LeadLimits
from serving.batch.output import finalize
from serving.batch.policy import DegradationPolicies
from serving.batch.runner import ItemRunner, RetryPolicy, refused
from serving.batch.store import (
    BatchStore,
    ClaimedItem,
    FileStore,
    ItemResult,
    WorkerInfo,
    WorkerStore,
)
from serving.batch.validator import Validator
from serving.keys import KeyStore
from serving.protocol import OnDegraded, ProtocolError, served_models
from serving.settings import BatchSettings

logger = logging.getLogger(__name__)

MAX_CLAIM = 256
"""Most items claimed in one transaction."""
DATABASE_RETRY_MAX_S = 30.0
"""Longest wait between tries while the database is unreachable."""
DRAIN_S = 10.0
"""How long a stopping worker waits to commit the results it has."""

T = TypeVar("T")


class BatchWorker:
    """Runs batch items until stopped, or — bound to one job — until that job is finished.

    Args:
        store: The batch store.
        workers: Where this worker's heartbeat (and so its leases) is kept.
        runner: Runs one item.
        info: This worker, as other workers see it.
        concurrency: Items running at once.
        lease_s: How long claimed items stay with this worker without a heartbeat.
        poll_s: How often to look for work when there is none.
        limiter: The lead limiter to re-divide among live workers on every heartbeat.
        job_id: Work on this job only, and return once it is finished.
        validator: Validates new jobs while the worker runs; None: this worker validates none.
    """

    def __init__(
        self,
        store: BatchStore,
        workers: WorkerStore,
        runner: ItemRunner,
        *,
        info: WorkerInfo,
        concurrency: int,
        lease_s: float,
        poll_s: float,
        limiter: LeadLimiter | None = None,
        job_id: str | None = None,
        validator: Validator | None = None,
    ) -> None:
        self.store = store
        self.workers = workers
        self.runner = runner
        self.info = info
        self.concurrency = concurrency
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.limiter = limiter
        self.job_id = job_id
        self.validator = validator
        self._queue: asyncio.Queue[ClaimedItem] = asyncio.Queue()
        self._low_water = concurrency // 2
        """Queued items below which the feeder claims more."""
        self._held = 0
        """Items claimed and not yet committed: queued, running or being committed."""
        self._in_hand = 0
        """Items queued or running (not yet handed to the committer)."""
        self._wake = asyncio.Event()
        """Set when the feeder has something to do: the queue ran low, all work is done, stop."""
        self._committer = _Committer(store, on_committed=self._release_slots)
        self._last_sweep = 0.0

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Work until ``stop`` is set (or the bound job is finished).

        Raises:
            StoreError: The database failed before the worker could register.
        """
        stop = stop or asyncio.Event()
        await self._heartbeat()
        helpers = [asyncio.create_task(self._slot()) for _ in range(self.concurrency)]
        helpers.append(asyncio.create_task(self._heartbeats()))
        helpers.append(asyncio.create_task(self._wake_on(stop)))
        if self.validator is not None:
            helpers.append(asyncio.create_task(self.validator.run(stop)))
        try:
            await self._feed(stop)
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            with suppress(TimeoutError):  # answers already made are kept, if the database is up
                await asyncio.wait_for(asyncio.shield(self._committer.drain()), DRAIN_S)
            try:
                await asyncio.shield(self.workers.release(self.info.id))
            except StoreError as exc:
                logger.warning(
                    "could not release this worker's items (they wait out their lease): %s", exc
                )

    async def _feed(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            room = min(2 * self.concurrency - self._in_hand, MAX_CLAIM)
            claimed = []
            if self._queue.qsize() <= self._low_water and room > 0:
                try:
                    claimed = await _until_stored(partial(self._claim, room), stop)
                except StoreError:
                    if stop.is_set():  # stopping while the database is down
                        return
                    raise
                self._held += len(claimed)
                self._in_hand += len(claimed)
                for item in claimed:
                    self._queue.put_nowait(item)
            if not claimed and await self._sweep(stop, force=self._held == 0):
                return
            if claimed and self._queue.qsize() <= self._low_water:
                continue  # there is more to claim and room for it
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    async def _claim(self, limit: int) -> list[ClaimedItem]:
        return await self.store.claim(
            self.info.id, limit=limit, lease_s=self.lease_s, job_id=self.job_id
        )

    async def _sweep(self, stop: asyncio.Event, *, force: bool) -> bool:
        """Finish jobs with nothing left to run (at most once a poll interval unless ``force``);
        True when the bound job is finished, or when the worker stops while the database is
        down."""
        now = time.monotonic()
        if not force and now - self._last_sweep < self.poll_s:
            return False
        self._last_sweep = now
        try:
            for job_id in await _until_stored(partial(self.store.finish_jobs, self.job_id), stop):
                await _until_stored(partial(self._finalize, job_id), stop)
            if self.job_id is None or self._held:
                return False
            return (await _until_stored(partial(self.store.get_job, self.job_id), stop)).finished
        except StoreError:
            if stop.is_set():
                return True
            raise

    async def _finalize(self, job_id: str) -> None:
        await finalize(self.store, await self.store.get_job(job_id))

    async def _slot(self) -> None:
        """Run items one after another; a result is handed to the committer and the slot moves
        on, so waiting for the database never keeps a slot from the lead."""
        while True:
            item = await self._queue.get()
            if self._queue.qsize() <= self._low_water:
                self._wake.set()
            try:
                result = await _until_stored(partial(self.runner.run, item))
            except Exception:  # a bug must fail one item, not the worker
                logger.exception("batch %s line %d failed unexpectedly", item.job_id, item.line)
                message = "the worker failed on this request; the error is in its log"
                result = refused(item, ProtocolError(500, "internal_error", message))
            self._in_hand -= 1
            self._committer.submit(item, result)

    def _release_slots(self, count: int) -> None:
        self._held -= count
        if not self._held:
            self._wake.set()

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                await self._heartbeat()
            except StoreError as exc:
                logger.warning("heartbeat failed (leases expire in %.0f s): %s", self.lease_s, exc)

    async def _heartbeat(self) -> None:
        live = await self.workers.heartbeat(self.info, lease_s=self.lease_s)
        if self.limiter is not None:
            self.limiter.share_among(live)


class _Committer:
    """Commits each result as soon as it is known — in one transaction with the results that
    arrived while the previous commit was under way, so under load the database sees one commit
    per group instead of one per item, and an idle worker still commits each result at once.

    A result waiting here when the process dies is not lost: its transcript is, and the item's
    next claim rebuilds the result from it.
    """

    def __init__(self, store: BatchStore, *, on_committed: Callable[[int], None]) -> None:
        self.store = store
        self.on_committed = on_committed
        self._waiting: list[tuple[ClaimedItem, ItemResult]] = []
        self._flushing: asyncio.Task[None] | None = None

    def submit(self, item: ClaimedItem, result: ItemResult) -> None:
        self._waiting.append((item, result))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())

    async def drain(self) -> None:
        """Wait until everything submitted is committed."""
        while self._flushing is not None and not self._flushing.done():
            await self._flushing

    async def _flush(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting, []
            outcomes = await _until_stored(partial(self.store.complete, group))
            for (item, _result), committed in zip(group, outcomes, strict=True):
                if not committed:
                    logger.warning(
                        "batch %s line %d was taken over by another worker (this one lost its "
                        "lease); its result is the other worker's",
                        item.job_id,
                        item.line,
                    )
            self.on_committed(len(group))


def lead_limiter(settings: BatchSettings) -> LeadLimiter | None:
    """The limiter the settings ask for; None when they set no limit."""
    limits = LeadLimits(
        concurrency=settings.lead_concurrency,
        requests_per_minute=settings.lead_requests_per_minute,
        tokens_per_minute=settings.lead_tokens_per_minute,
    )
    return LeadLimiter(limits) if limits.any else None


def batch_worker(
    settings: BatchSettings,
    orchestrator: Orchestrator,
    *,
    info: WorkerInfo,
    concurrency: int | None = None,
    limiter: LeadLimiter | None = None,
    job_id: str | None = None,
    files_dir: Path | None = None,
    degraded: OnDegraded = OnDegraded.degrade,
) -> BatchWorker:
    """A worker on the database of ``orchestrator``'s transcript store; given ``files_dir``
    (where uploads are on this machine), it validates new jobs too. ``degraded`` is the server's
    degradation policy, for lines that set none and whose batch's key has none."""
    transcripts = orchestrator.store
    if transcripts is None:
        raise ValueError("batch workers need an orchestrator that records transcripts")
    retry = RetryPolicy(settings.max_attempts, settings.retry_initial_s, settings.retry_max_s)
    store = BatchStore(transcripts.database)
    validator = None
    if files_dir is not None:
        validator = Validator(
            store,
            FileStore(transcripts.database),
            files_dir=files_dir,
            validator_id=info.id,
            settings=settings,
            served=lambda: served_models(orchestrator.catalog, orchestrator.lineups.paused),
            request_limits=orchestrator.limits,
        )
    return BatchWorker(
        store,
        WorkerStore(transcripts.database),
        ItemRunner(
            orchestrator,
            transcripts,
            retry,
            DegradationPolicies(KeyStore(transcripts.database), degraded),
        ),
        info=info,
        concurrency=concurrency or settings.concurrency,
        lease_s=settings.lease_s,
        poll_s=settings.poll_s,
        limiter=limiter,
        job_id=job_id,
        validator=validator,
    )


@asynccontextmanager
async def background_worker(
    settings: BatchSettings,
    orchestrator: Orchestrator,
    *,
    files_dir: Path,
    degraded: OnDegraded = OnDegraded.degrade,
) -> AsyncIterator[None]:
    """Run and validate batches in this process (``understudy serve``) while the context lasts.

    Not started when lead limits are set: this process's other lead calls (chat) would not be
    counted against them; dedicated ``understudy worker`` processes enforce them (and validate).
    """
    if lead_limiter(settings) is not None:
        logger.warning(
            "batch.lead_* limits are set, so this server runs and validates no batches: "
            "start `understudy worker` processes"
        )
        yield
        return
    worker = batch_worker(
        settings,
        orchestrator,
        info=WorkerInfo.this_process(),
        concurrency=settings.api_worker_concurrency,
        files_dir=files_dir,
        degraded=degraded,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop), name="batch-worker")
    task.add_done_callback(_log_failure)
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("the batch worker stopped: %s", task.exception())


async def _until_stored(action: Callable[[], Awaitable[T]], stop: asyncio.Event | None = None) -> T:
    """``action()``, tried again (backing off) for as long as the database fails — or until
    ``stop`` is set, which ends a wait at once.

    Raises:
        StoreError: The database still failed when ``stop`` was set.
    """
    try:
        return await action()  # the common case, without building a retry loop
    except StoreError as exc:
        logger.warning("database unavailable, retrying: %s", exc)
        if stop is not None and stop.is_set():
            raise

    async def pause(seconds: float) -> None:
        if stop is None:
            await asyncio.sleep(seconds)
            return
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(StoreError),
        wait=wait_exponential(multiplier=0.5, max=DATABASE_RETRY_MAX_S),
        stop=lambda _state: stop is not None and stop.is_set(),
        sleep=pause,
        before_sleep=before_sleep_log(logger, logging.WARNING),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await action()
    raise AssertionError("unreachable: tenacity retries StoreError until it succeeds")
