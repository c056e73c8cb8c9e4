"""Distillation as a job: build → train → evaluate (→ promote), run by ``understudy worker``.

A job is queued by hand (``distill start``) or by ``distill propose`` when a proposal reaches
``UNDERSTUDY_DISTILL_AUTO_DISTILL_RUNS``; the worker's ``distill`` job kind claims it and runs the
same steps as the commands ``distill build``, ``distill train`` and ``distill evaluate``,
recording each step's result on the job. The catalog the job works against — the base catalog
with the registry's specialists — is read once when the job starts and handed to every step.

The worker renews the job's lease while it runs; stopping the worker (or cancelling the job)
interrupts training at the next step, leaving its checkpoint, and a later claim resumes where it
stopped: the dataset and the adapter are found again by content. Promotion follows only when the
gate passed and ``auto_promote`` is on; otherwise a person runs ``specialists promote``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from database import Database, StoreError
from distill.catalog import known_catalog
from distill.config import DistillConfig, Log, SLMAccess
from distill.gate import HeldOut, evaluate_registered, register_adapter
from distill.jobs import DistillJob, DistillJobStore
from distill.progress import ProgressLog
from distill.promotion import Promoter, ServedBase, served_base
from distill.proposals import accept
from distill.registry import Proposal, RegistryStore, SpecialistVersion
from distill.source import read_transcripts
from orchestrator.transcripts import TranscriptStore
from specialists.catalog import Catalog, Specialist
from specialists.errors import UnderstudyError

if TYPE_CHECKING:
    from distill.training import StepReport, TrainPlan

logger = logging.getLogger(__name__)

PROGRESS_EVERY_S = 3.0
"""How often a training job's progress is stored: what the console's ETA and curve lag by."""


async def start_for_proposal(
    registry: RegistryStore, jobs: DistillJobStore, proposal_id: int, *, trigger: str = "manual"
) -> DistillJob:
    """Register the proposal's specialist (accepting the proposal) and queue its job."""
    definition = await accept(registry, proposal_id)
    return await jobs.enqueue(definition.name, proposal_id=proposal_id, trigger=trigger)


async def start_for_large_proposals(
    registry: RegistryStore,
    jobs: DistillJobStore,
    proposals: Sequence[Proposal],
    *,
    min_runs: int | None,
) -> list[DistillJob]:
    """Queue a job for every proposal of at least ``min_runs`` runs; none when it is ``None``
    (jobs start only by hand)."""
    if min_runs is None:
        return []
    return [
        await start_for_proposal(registry, jobs, proposal.id, trigger="auto")
        for proposal in proposals
        if proposal.run_count >= min_runs
    ]


async def start_for_specialist(
    registry: RegistryStore, jobs: DistillJobStore, name: str, *, base: Catalog
) -> DistillJob:
    """Queue a job training a new version of an existing specialist from its transcripts.

    Args:
        base: The catalog without the registry (built-ins and settings overrides).

    Raises:
        UnknownSpecialistError: No such specialist.
    """
    known_catalog(base, await registry.snapshot()).get(name)
    return await jobs.enqueue(name)


async def run_distillation_jobs(
    database: Database,
    config: DistillConfig,
    slm: SLMAccess,
    *,
    worker_id: str,
    stop: asyncio.Event,
    log: Log = lambda _m: None,
) -> None:
    """Claim jobs one at a time and run them until ``stop`` is set."""
    jobs = DistillJobStore(database)
    while not stop.is_set():
        job = await jobs.claim(
            worker_id, lease_s=config.queue.lease_s, max_attempts=config.queue.max_attempts
        )
        if job is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), config.queue.poll_s)
            continue
        log(f"distillation job {job.id}: {job.specialist} (attempt {job.attempts})")
        run = DistillationRun(database, config, slm, job, worker_id=worker_id, log=log)
        await run.run(stop)


class Stopped(Exception):
    """The worker is stopping or the job was cancelled: hand it back (or leave it cancelled)."""


class DistillationRun:
    """One claimed job, from where it stands to its end.

    Args:
        database: The process's database (transcripts, registry and job queue).
        config: The distillation configuration.
        slm: The base model's directory and the backend candidates are evaluated on.
        job: The claimed job.
        worker_id: The worker holding its lease.
    """

    def __init__(
        self,
        database: Database,
        config: DistillConfig,
        slm: SLMAccess,
        job: DistillJob,
        *,
        worker_id: str,
        log: Log = lambda _m: None,
    ) -> None:
        self.config = config
        self.slm = slm
        self.store = TranscriptStore(database)
        self.registry = RegistryStore(database)
        self.jobs = DistillJobStore(database)
        self.job = job
        self.worker_id = worker_id
        self.log = log
        self._halt = threading.Event()
        """Set when the job must stop: read by the training thread between steps."""

    async def run(self, stop: asyncio.Event) -> DistillJob:
        """Run the remaining steps; the job ends succeeded or failed, or goes back to the queue
        when the worker stops (cancelled jobs stay cancelled)."""
        keeper = asyncio.create_task(self._keep_lease(stop))
        try:
            await self._steps()
        except Stopped:
            if stop.is_set():
                await self.jobs.release(self.job.id, self.worker_id)
            return await self.jobs.get(self.job.id)
        except UnderstudyError as exc:
            logger.warning("distillation job %s failed: %s", self.job.id, exc)
            return await self.jobs.finish(self.job.id, self.worker_id, error=str(exc))
        except Exception as exc:  # a bug fails this job, not the worker's other jobs
            logger.exception("distillation job %s failed", self.job.id)
            error = f"{type(exc).__name__}: {exc}"
            return await self.jobs.finish(self.job.id, self.worker_id, error=error)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        return await self.jobs.finish(self.job.id, self.worker_id)

    async def _steps(self) -> None:
        known = known_catalog(self.config.catalog, await self.registry.snapshot())
        specialist = known.get(self.job.specialist)
        dataset = await self._build(known, specialist)
        adapter = await self._train(specialist, dataset)
        base = served_base(self.config)
        version = await self._evaluate(known, base, adapter, dataset)
        if version.gate_passed and self.config.auto_promote:
            await self._stage("promote")
            promoter = Promoter(
                self.registry, base_catalog=self.config.catalog, served=base, log=self.log
            )
            await promoter.promote(version, share=self.config.canary_share, actor="distill")

    # Building and training need the local extra, imported when the step runs: queueing a job
    # (`distill start`) works on a light install.

    async def _build(self, known: Catalog, specialist: Specialist) -> Path:
        if self.job.dataset_path and Path(self.job.dataset_path).is_dir():
            return Path(self.job.dataset_path)  # built by an earlier attempt
        from distill.dataset import DistillTarget, build_dataset, dataset_dir, save_dataset

        await self._stage("build")
        run_ids = None
        if self.job.proposal_id is not None:
            run_ids = (await self.registry.get_proposal(self.job.proposal_id)).run_ids
        transcripts = await read_transcripts(
            self.store,
            known,
            specialist=None if run_ids is not None else specialist.name,
            run_ids=run_ids,
            max_runs=self.config.max_transcripts,
        )
        target = DistillTarget(
            specialist.name,
            specialist.system_prompt,
            specialist.validator,
            frozenset(run_ids) if run_ids is not None else None,
        )
        built = await asyncio.to_thread(build_dataset, transcripts, target, self.config.dataset)
        directory = save_dataset(built, dataset_dir(self.config.paths.datasets, built.card))
        await self.jobs.progress(self.job.id, self.worker_id, dataset_path=str(directory))
        self.log(f"dataset {directory}: {built.card.examples} examples")
        return directory

    async def _train(self, specialist: Specialist, dataset: Path) -> Path:
        from distill.training import adapter_dir, train_lora

        await self._stage("train")
        config = self.config
        base_dir = self.slm.base_model_dir(self.log)
        out_dir = adapter_dir(
            config.paths.adapters, specialist.name, dataset, base_dir, config.train
        )
        await self.jobs.progress(self.job.id, self.worker_id, adapter_path=str(out_dir))
        progress = ProgressLog(self.job.training)
        observer = _HaltingObserver(self._halt, progress)
        reporter = asyncio.create_task(self._report(progress))
        began = time.monotonic()
        try:
            result = await asyncio.to_thread(
                train_lora,
                dataset,
                base_dir,
                out_dir,
                config.train,
                config.limits,
                base_ref=config.base_model,
                observer=observer,
            )
        finally:  # a halted or failed attempt spent its seconds (and made progress) too
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
            await self._store_reading(progress)
            await self._spent("train", began, observer.device)
        self.log(f"adapter {result.adapter_dir}: {result.metadata['steps']} steps")
        return result.adapter_dir

    async def _evaluate(
        self, known: Catalog, base: ServedBase, adapter: Path, dataset: Path
    ) -> SpecialistVersion:
        await self._stage("evaluate")
        held_out = HeldOut.read(dataset)
        version, current = await register_adapter(
            self.registry, known, base, self.job.specialist, adapter, held_out
        )
        began = time.monotonic()
        backend = self.slm.open_backend(self.log)
        try:
            version = await evaluate_registered(
                self.store,
                self.registry,
                backend,
                version,
                current,
                held_out,
                gate=self.config.gate,
                slm_cost_per_token=self.config.slm_cost_per_token,
                on_answer=self._check_halt,
            )
        finally:
            await backend.aclose()
            await self._spent("evaluate", began, None)
        await self.jobs.progress(self.job.id, self.worker_id, version_id=version.id)
        verdict = "passed" if version.gate_passed else "failed"
        self.log(f"{version.label}: evaluation gate {verdict}")
        return version

    async def _report(self, progress: ProgressLog) -> None:
        """Store the training's progress every ``PROGRESS_EVERY_S`` while it trains."""
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            await self._store_reading(progress)

    async def _store_reading(self, progress: ProgressLog) -> None:
        """Store the latest reading; a database that fails loses the reading (logged), never
        the training, nor the error a failed attempt ends with."""
        reading = progress.reading()
        if reading is None:
            return
        try:
            await self.jobs.record_training(self.job.id, self.worker_id, reading)
        except StoreError as exc:
            logger.warning("job %s: training progress not stored: %s", self.job.id, exc)

    async def _spent(self, stage: str, began: float, device: str | None) -> None:
        """Record the seconds since ``began`` on the job: the ROI ledger prices them."""
        seconds = time.monotonic() - began
        await self.jobs.add_compute(self.job.id, stage=stage, seconds=seconds, device=device)

    async def _stage(self, stage: str) -> None:
        self._check_halt()
        await self.jobs.progress(self.job.id, self.worker_id, stage=stage)

    def _check_halt(self) -> None:
        if self._halt.is_set():
            raise Stopped

    async def _keep_lease(self, stop: asyncio.Event) -> None:
        """Renew the lease every third of it; a lost lease (cancelled, or taken over), a stopping
        worker, or a lease that could not be renewed before it ran out (the database is down:
        another worker may claim the job by now) halts the job at its next step."""
        lease_s = self.config.queue.lease_s
        renewed = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), lease_s / 3)
            if stop.is_set():
                break
            try:
                if not await self.jobs.renew(self.job.id, self.worker_id, lease_s=lease_s):
                    break
                renewed = time.monotonic()
            except StoreError as exc:
                if time.monotonic() - renewed >= lease_s:
                    logger.warning("distillation job %s: lease lost (%s)", self.job.id, exc)
                    break
                logger.warning("distillation job %s: lease not renewed yet: %s", self.job.id, exc)
        self._halt.set()


class _HaltingObserver:
    """Stops training between steps when the job must halt (the checkpoint stays), notes the
    device training runs on, for the job's compute record, and passes each step to the job's
    progress log (the console's step, ETA and loss curve)."""

    def __init__(self, halt: threading.Event, progress: ProgressLog) -> None:
        self.halt = halt
        self.progress = progress
        self.device: str | None = None
        """The kind of device training runs on (``cpu``, ``cuda``), once it started."""

    def started(self, plan: TrainPlan) -> None:
        self.device = plan.device.split(":", 1)[0]  # "cuda:0" is a cuda device
        self.progress.started(plan.start_step, plan.total_steps)

    def step(self, report: StepReport) -> None:
        self.progress.step(report.step, report.loss)
        if self.halt.is_set():
            raise Stopped
