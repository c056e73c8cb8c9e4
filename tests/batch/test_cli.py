"""`understudy batch` and `understudy worker` as users run them: real processes, killed with
SIGKILL mid-job (or mid-validation), resumed in another process; several workers sharing
PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Select, select

from database import Database
from database.engine import create_engine
from database.tables import BatchItemRow, BatchJobRow, WorkerRow
from distill.registry import RegistryStore
from orchestrator.modes import Mode
from orchestrator.testing import ScriptedLead, reply
from orchestrator.transcripts import TranscriptStore
from serving.batch.files import save_upload
from serving.batch.store import BatchJob, BatchStore, FileStore
from serving.batch.validation import InvalidBatchInput
from serving.batch.validator import Validator
from serving.cli.batch_cmd import _submit
from serving.keys import KeyStore
from serving.protocol import served_models
from serving.settings import get_settings
from tests.batch.conftest import read_jsonl, request_line, write_lines, write_requests
from tests.distill.test_reconcile import MUSEUM, promoted
from tests.helpers.cli import UNDERSTUDY, understudy
from tests.helpers.stores import open_store

LEAD_LATENCY_S = 0.05


@pytest.fixture
def slow_lead() -> ScriptedLead:
    with ScriptedLead(
        [reply("ok", prompt_tokens=20, completion_tokens=5, delay_s=LEAD_LATENCY_S)],
        repeat_last=True,
        model="gpt-4o-mini",
    ) as lead:
        yield lead


@pytest.fixture
def batch_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Environment of every process a test starts (the lead's URL is set by each test)."""
    for name, value in {
        "DATABASE_URL": database_url,
        "LEAD_MODEL": "gpt-4o-mini",
        "SLM_BACKEND": "vllm",  # llm mode never calls it; nothing to load
        "SLM_BASE_URL": "http://127.0.0.1:9/v1",
        "BATCH_LEASE_S": "3",
        "BATCH_POLL_S": "0.2",
        "BATCH_RETRY_INITIAL_S": "0",
    }.items():
        monkeypatch.setenv(f"UNDERSTUDY_{name}", value)
    return database_url


def start(*args: str, log: Path) -> subprocess.Popen[bytes]:
    """A process in the background, its output in ``log`` (a pipe nobody reads could fill up
    and stop it)."""
    with log.open("wb") as sink:
        return subprocess.Popen(
            [*UNDERSTUDY, *args], stdout=sink, stderr=subprocess.STDOUT, env=os.environ
        )


async def _wait_for_job(store: BatchStore, *, done_at_least: int = 0) -> BatchJob:
    async with asyncio.timeout(240):
        while True:
            jobs = await store.list_jobs(limit=1)
            if jobs and jobs[0].status != "validating":
                progress = await store.progress(jobs[0].id)
                if progress.done >= done_at_least:
                    return jobs[0]
            await asyncio.sleep(0.1)


async def test_a_job_killed_midway_resumes_with_every_answer_exactly_once(
    batch_env: str, slow_lead: ScriptedLead, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("UNDERSTUDY_LEAD_BASE_URL", slow_lead.base_url)
    requests = write_requests(tmp_path / "requests.jsonl", 500)
    output = tmp_path / "out.jsonl"
    runner = start(
        "batch",
        "run",
        str(requests),
        "--mode",
        "llm",
        "--concurrency",
        "32",
        "--output",
        str(output),
        log=tmp_path / "run.log",
    )
    store = await open_store(BatchStore, batch_env)
    try:
        job = await _wait_for_job(store, done_at_least=100)
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=30)
        before = await store.progress(job.id)
        assert 100 <= before.done < 500, "the kill must land midway"
        assert before.running > 0  # items held by the dead process wait out their lease

        resumed = understudy("batch", "resume", job.id, "--output", str(output))
        assert resumed.returncode == 0, resumed.stderr

        lines = read_jsonl(output)
        assert [line["custom_id"] for line in lines] == [f"req-{i}" for i in range(500)]
        assert all(line["response"]["status_code"] == 200 for line in lines)
        assert not (tmp_path / "out.errors.jsonl").exists()
        run_ids = [line["understudy"]["run_id"] for line in lines]
        assert len(set(run_ids)) == 500
        transcripts = await open_store(TranscriptStore, batch_env, migrate=False)
        try:
            runs = await transcripts.list_runs(limit=2000)
        finally:
            await transcripts.database.close()
        # One transcript per answer; any other may only be an attempt the lead failed.
        answered = sorted(run.run_id for run in runs if run.answer is not None)
        assert answered == sorted(run_ids)
        failed_attempts = [(run.run_id, run.error) for run in runs if run.answer is None]
        assert len(runs) == 500 + len(failed_attempts), failed_attempts
        assert "500 succeeded" in resumed.stdout and "0 failed" in resumed.stdout
        assert (await store.get_job(job.id)).status == "completed"
    finally:
        await store.database.close()
    # Only what was in flight at the kill reached the lead twice.
    assert 500 <= len(slow_lead.requests) <= 500 + 2 * 32


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_two_workers_on_postgresql_split_a_job_and_run_no_item_twice(
    batch_env: str, slow_lead: ScriptedLead, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("UNDERSTUDY_LEAD_BASE_URL", slow_lead.base_url)
    monkeypatch.setenv("UNDERSTUDY_BATCH_LEASE_S", "60")  # nobody dies here: no lease runs out
    store = await open_store(BatchStore, batch_env)
    logs = [tmp_path / f"worker-{index}.log" for index in range(2)]
    workers = [start("worker", "--concurrency", "8", log=log) for log in logs]
    try:
        async with asyncio.timeout(120):  # both registered before there is work to take
            while len(await _select(batch_env, select(WorkerRow.id))) < 2:
                await asyncio.sleep(0.2)
        submitted = understudy(
            "batch", "submit", str(write_requests(tmp_path / "in.jsonl", 300)), "--mode", "llm"
        )
        assert submitted.returncode == 0, submitted.stderr
        job_id = submitted.stdout.strip()
        async with asyncio.timeout(240):
            while not (await store.get_job(job_id)).finished:
                await asyncio.sleep(0.2)
        items = await _select(
            batch_env,
            select(BatchItemRow.claims, BatchItemRow.worker_id).where(
                BatchItemRow.job_id == job_id
            ),
        )
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        stopped = [worker.wait(timeout=60) for worker in workers]
        await store.database.close()
    assert stopped == [0, 0], [log.read_text()[-2000:] for log in logs]
    assert len(await _select(batch_env, select(WorkerRow.id))) == 0  # both left cleanly
    assert [claims for claims, _worker in items] == [1] * 300  # no item claimed twice
    per_worker = Counter(worker for _claims, worker in items)
    assert len(per_worker) == 2 and min(per_worker.values()) > 0, per_worker
    assert len(slow_lead.requests) == 300

    results = understudy("batch", "results", job_id, "--output", str(tmp_path / "out.jsonl"))
    assert results.returncode == 0, results.stderr
    assert len({line["custom_id"] for line in read_jsonl(tmp_path / "out.jsonl")}) == 300


async def test_a_worker_killed_mid_validation_leaves_the_job_to_another_that_finishes_it(
    batch_env: str, lead: ScriptedLead, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("UNDERSTUDY_LEAD_BASE_URL", lead.base_url)
    settings = get_settings()
    lines = 30_000
    store = await open_store(BatchStore, batch_env)
    try:
        with write_requests(tmp_path / "in.jsonl", lines).open("rb") as source:
            upload = await save_upload(
                FileStore(store.database),
                settings.files_dir,
                source,
                filename="in.jsonl",
                max_bytes=settings.batch.max_file_bytes,
                owner_key_id=None,
            )
        job = await store.create_job(mode="llm", input_name="in.jsonl", input_file_id=upload.id)
        first = start("worker", "--kind", "batch", log=tmp_path / "worker.log")
        async with asyncio.timeout(120):  # its first checkpoint
            while (await store.get_job(job.id)).total == 0:
                await asyncio.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        midway = await store.get_job(job.id)
        assert midway.status == "validating" and 0 < midway.total < lines, "must land midway"

        second = Validator(
            store,
            FileStore(store.database),
            files_dir=settings.files_dir,
            validator_id="second",
            settings=settings.batch,
            served=lambda: served_models(settings.catalog()),
            request_limits=settings.api.request_limits,
        )
        async with asyncio.timeout(120):  # the dead worker's lease (3 s) runs out first
            while not await second.validate_next():
                await asyncio.sleep(0.2)
        done = await store.get_job(job.id)
        assert (done.status, done.total) == ("in_progress", lines)
        assert (await store.progress(job.id)).pending == lines
    finally:
        await store.database.close()
    claims = await _select(
        batch_env,
        select(BatchJobRow.validation_claims, BatchJobRow.validator_id).where(
            BatchJobRow.id == job.id
        ),
    )
    assert claims == [(2, "second")]
    stored = await _select(
        batch_env, select(BatchItemRow.line).where(BatchItemRow.job_id == job.id)
    )
    assert sorted(line for (line,) in stored) == list(range(1, lines + 1))  # each line once
    assert lead.requests == []


async def test_an_invalid_file_is_reported_line_by_line_and_nothing_runs(
    batch_env: str, lead: ScriptedLead, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("UNDERSTUDY_LEAD_BASE_URL", lead.base_url)
    bad = write_lines(
        tmp_path / "bad.jsonl",
        [
            request_line("a", "fine"),
            "[1, 2",
            request_line("a", "duplicate"),
            {**request_line("u", "x"), "url": "/v1/completions"},
            {"custom_id": "m", "method": "POST", "url": "/v1/chat/completions"},
        ],
    )
    result = understudy(
        "batch", "run", str(bad), "--mode", "llm", "--output", str(tmp_path / "out.jsonl")
    )
    assert result.returncode == 1
    for line, code in [
        (2, "invalid_json"),
        (3, "duplicate_custom_id"),
        (4, "unsupported_url"),
        (5, "invalid_body"),
    ]:
        assert f"line {line} {code}" in result.stderr, result.stderr
    assert "4 invalid line(s) in the input, nothing ran" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()
    assert lead.requests == []
    transcripts = await open_store(TranscriptStore, batch_env, migrate=False)
    try:
        assert await transcripts.list_runs() == []
    finally:
        await transcripts.database.close()


async def _select(url: str, query: Select) -> list[tuple]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return [tuple(row) for row in await connection.execute(query)]
    finally:
        await engine.dispose()


async def test_submit_checks_models_against_the_catalog_the_run_serves(
    batch_env: str, tiny_lora_dir: Path, tmp_path: Path
) -> None:
    """A promoted specialist's model is accepted by the CLI as by the API (it once checked the
    settings' catalog only, so `understudy-<promoted>` was refused)."""
    requests = write_lines(
        tmp_path / "in.jsonl", [request_line("a", "Open on Sunday?", model="understudy-museum")]
    )
    get_settings.cache_clear()
    with pytest.raises(InvalidBatchInput):
        await _submit(get_settings(), requests, Mode.slm, skip_invalid=False)
    async with await Database.open(batch_env) as registry_database:
        registry = RegistryStore(registry_database)
        await registry.define_specialist(MUSEUM)
        await promoted(registry, "museum", tiny_lora_dir)
    job = await _submit(get_settings(), requests, Mode.slm, skip_invalid=False)
    assert (job.status, job.total) == ("in_progress", 1)


async def test_the_operator_lists_every_keys_jobs_or_one_owners(batch_env: str) -> None:
    store = await open_store(BatchStore, batch_env)
    try:
        keys = KeyStore(store.database)
        alice = (await keys.create("alice"))[0]
        bob = (await keys.create("bob"))[0]
        jobs: dict[str | None, str] = {}
        for owner in (alice.id, bob.id, None):
            job = await store.create_job(mode="llm", input_name="in.jsonl", owner_key_id=owner)
            jobs[owner] = job.id
    finally:
        await store.database.close()

    def listed(*args: str) -> list[tuple[str, str | None]]:
        result = understudy("batch", "list", "--json", *args)
        assert result.returncode == 0, result.stderr
        return [
            (job["id"], job["owner_key_id"]) for job in map(json.loads, result.stdout.splitlines())
        ]

    assert set(listed()) == {(job, owner) for owner, job in jobs.items()}  # the operator's view
    assert listed("--owner", alice.prefix) == [(jobs[alice.id], alice.id)]
    assert listed("--owner", bob.id) == [(jobs[bob.id], bob.id)]
    unknown = understudy("batch", "list", "--owner", "us-nobody")
    assert unknown.returncode == 1 and "no key" in unknown.stderr
