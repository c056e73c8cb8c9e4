"""The ``distill`` job kind: build → train → evaluate on a real store and a tiny real model;
a worker that stops hands the job back and the next one resumes it; bad input fails the job
with a clear error and leaves the registry as it was."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from distill.jobs import DistillJobStore
from distill.pipeline import DistillationRun, start_for_proposal, start_for_specialist
from distill.registry import ProposalDraft, RegistryStore
from orchestrator.transcripts import TranscriptStore
from serving.runtime import distill_config, slm_access
from serving.settings import get_settings
from specialists.errors import UnknownSpecialistError
from tests.distill.helpers import HOURS_ANSWER, lead_run, museum_hours_questions
from tests.helpers.outage import take_down
from tests.helpers.stores import open_store

LEASE_S = 30.0


@pytest.fixture
def settings(tiny_model_dir: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "UNDERSTUDY_DATABASE_URL": database_url,
        "UNDERSTUDY_SLM_BASE_MODEL": str(tiny_model_dir),
        "UNDERSTUDY_DISTILL_MIN_EXAMPLES": "8",
        "UNDERSTUDY_DISTILL_VAL_FRACTION": "0.2",
        "UNDERSTUDY_DISTILL_TEST_FRACTION": "0.2",
        "UNDERSTUDY_DISTILL_EPOCHS": "3",
        "UNDERSTUDY_DISTILL_BATCH_SIZE": "4",
        "UNDERSTUDY_DISTILL_RANK": "4",
        "UNDERSTUDY_DISTILL_CHECKPOINT_EVERY": "2",
        "UNDERSTUDY_DISTILL_DEVICE": "cpu",
        "UNDERSTUDY_DISTILL_MIN_ACCEPTED": "1",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


@pytest.fixture
async def store(settings: None) -> AsyncIterator[TranscriptStore]:
    opened = await open_store(TranscriptStore, get_settings().database_url)
    yield opened
    await opened.database.close()


async def museum_proposal(store: TranscriptStore, runs: int) -> int:
    """``runs`` museum questions the lead answered, proposed as a new specialist."""
    run_ids = []
    for minute, question in enumerate(museum_hours_questions(runs)):
        run = lead_run(question, HOURS_ANSWER, minute=minute)
        await store.save_run(run)
        run_ids.append(run.run_id)
    (proposal,) = await RegistryStore(store.database).replace_open_proposals(
        [
            ProposalDraft(
                name="museum_open",
                description="Answers questions about the museum's opening hours.",
                examples=tuple(museum_hours_questions(3)),
                run_ids=tuple(run_ids),
                lead_cost_usd=0.1,
                window_days=1.0,
                monthly_savings_usd=3.0,
                max_tokens=16,
            )
        ]
    )
    return proposal.id


async def claim(store: TranscriptStore, worker: str) -> DistillationRun:
    """The next job, claimed by ``worker`` as ``understudy worker`` would."""
    job = await DistillJobStore(store.database).claim(worker, lease_s=LEASE_S, max_attempts=3)
    assert job is not None
    settings = get_settings()
    config, slm = distill_config(settings), slm_access(settings)
    return DistillationRun(store.database, config, slm, job, worker_id=worker)


async def test_a_stopped_worker_hands_the_job_back_and_the_next_one_resumes_it(
    store: TranscriptStore,
) -> None:
    registry, jobs = RegistryStore(store.database), DistillJobStore(store.database)
    job = await start_for_proposal(registry, jobs, await museum_proposal(store, 40))
    assert (await registry.get_proposal(job.proposal_id or 0)).status == "accepted"

    first = await claim(store, "worker-a")
    stop = asyncio.Event()

    async def stop_at_the_first_checkpoint() -> None:
        while not any(get_settings().adapters_dir.glob("museum_open/*/checkpoints/*")):
            await asyncio.sleep(0.05)
        stop.set()

    stopper = asyncio.create_task(stop_at_the_first_checkpoint())
    handed_back = await first.run(stop)
    await stopper
    assert (handed_back.status, handed_back.stage) == ("queued", "train")
    assert handed_back.dataset_path and handed_back.adapter_path
    assert any(Path(handed_back.adapter_path).glob("checkpoints/*"))
    assert await registry.list_versions() == []
    halted = handed_back.training  # its progress, stored as it trained
    assert halted is not None and 0 < halted.step < halted.total_steps and halted.losses

    second = await claim(store, "worker-b")
    done = await second.run(asyncio.Event())
    assert (done.status, done.stage, done.attempts) == ("succeeded", "evaluate", 2)
    assert done.dataset_path == handed_back.dataset_path  # found again, not rebuilt
    (version,) = await registry.list_versions()
    assert version.id == done.version_id and version.specialist == "museum_open"
    assert version.gate_passed is not None and version.metrics["test"]["items"] > 0
    assert Path(version.adapter_path) == Path(done.adapter_path or "")
    assert (Path(version.adapter_path) / "training.json").is_file()
    assert not (Path(version.adapter_path) / "checkpoints").exists()  # resumed, then finished
    trained = done.training
    assert trained is not None and trained.step == trained.total_steps == halted.total_steps
    assert 0 < trained.start_step <= halted.step  # resumed from its checkpoint
    assert trained.losses[0] == halted.losses[0]  # with the curve trained before it
    assert [step for step, _ in trained.losses] == sorted({s for s, _ in trained.losses})


async def test_too_small_a_dataset_fails_the_job_and_registers_nothing(
    store: TranscriptStore,
) -> None:
    registry, jobs = RegistryStore(store.database), DistillJobStore(store.database)
    job = await start_for_proposal(registry, jobs, await museum_proposal(store, 6))
    run = await claim(store, "worker-a")
    failed = await run.run(asyncio.Event())
    assert failed.id == job.id and failed.status == "failed" and failed.stage == "train"
    assert "training examples; at least 8 are needed" in (failed.error or "")
    assert await registry.list_versions() == [] and await registry.generation() == 0


async def test_jobs_are_only_queued_for_specialists_that_exist(store: TranscriptStore) -> None:
    registry, jobs = RegistryStore(store.database), DistillJobStore(store.database)
    with pytest.raises(UnknownSpecialistError, match="nobody"):
        await start_for_specialist(registry, jobs, "nobody", base=get_settings().catalog())
    queued = await start_for_specialist(registry, jobs, "math", base=get_settings().catalog())
    assert (queued.specialist, queued.proposal_id, queued.status) == ("math", None, "queued")


async def test_a_job_whose_lease_cannot_be_renewed_halts_once_the_lease_is_over(
    store: TranscriptStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database went away: after a lease without a renewal another worker may have claimed
    the job, so this one stops training (the halt is read between training steps)."""
    monkeypatch.setenv("UNDERSTUDY_BATCH_LEASE_S", "1")
    get_settings.cache_clear()
    registry, jobs = RegistryStore(store.database), DistillJobStore(store.database)
    await start_for_proposal(registry, jobs, await museum_proposal(store, 8))
    run = await claim(store, "worker-a")
    keeper = asyncio.create_task(run._keep_lease(asyncio.Event()))
    await asyncio.sleep(0.5)
    assert not run._halt.is_set()  # renewed while the database answers
    restore = await take_down(get_settings().database_url)
    try:
        await store.database.engine.dispose()
        await asyncio.wait_for(keeper, 5)  # gives up once a whole lease passed without renewal
        assert run._halt.is_set()
    finally:
        await restore()
