"""One database per process, and one write path through it.

SQLite has a single writer; the database queues every write of the process in one place, so that
concurrent requests wait their turn instead of sleeping in SQLite's busy handler. That only works
if every store writes through the same :class:`~database.Database` — keys and feedback included.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import database.engine
from database import Database
from distill.jobs import DistillJobStore
from distill.registry import RegistryStore, SpecialistDefinition
from orchestrator.transcripts import TranscriptStore
from serving.api.app import create_app
from serving.batch.store import BatchStore, FileStore, WorkerInfo, WorkerStore
from serving.keys import KeyStore
from serving.settings import Settings
from tests.orchestrator.test_transcripts import make_run

QUEUED_S = 0.3
"""Long enough for any write that skipped the queue to finish on SQLite (milliseconds)."""


async def test_every_store_writes_through_the_one_queue(tmp_path: Path) -> None:
    async with await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'u.db'}") as db:
        transcripts, keys = TranscriptStore(db), KeyStore(db)
        await transcripts.save_run(make_run(run_id="judged"))
        key, _ = await keys.create("limited", requests_per_minute=10, tokens_per_day=1000)
        writes = {
            "run": transcripts.save_run(make_run(run_id="another")),
            "feedback": transcripts.add_feedback("judged", 1.0),
            "key": keys.create("new"),
            "admission": keys.admit_request(key),
            "tokens": keys.record_tokens(key, 5),
            "revocation": keys.revoke(key.id),
            "file": FileStore(db).add_file(
                purpose="batch",
                filename="in.jsonl",
                size=1,
                sha256="0" * 64,
                path="in.jsonl",
                owner_key_id=None,
            ),
            "batch": BatchStore(db).create_job(mode="llm", input_name="in.jsonl"),
            "heartbeat": WorkerStore(db).heartbeat(WorkerInfo.this_process(), lease_s=30),
            "specialist": RegistryStore(db).define_specialist(
                SpecialistDefinition("museum", "Museum hours", "Be brief.", "nonempty", ("When?",))
            ),
            "distillation job": DistillJobStore(db).enqueue("math"),
        }
        async with db.writing():  # another writer holds the queue
            tasks = {name: asyncio.ensure_future(write) for name, write in writes.items()}
            await asyncio.sleep(QUEUED_S)
            jumped = [name for name, task in tasks.items() if task.done()]
        assert jumped == [], f"these writes skipped the queue: {jumped}"
        await asyncio.wait_for(asyncio.gather(*tasks.values()), 30)
        assert len(await transcripts.list_runs()) == 2
        assert [f.score for f in await transcripts.feedback_for("judged")] == [1.0]


async def test_the_api_process_opens_one_engine_for_every_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engines: list[str] = []
    real_create_engine = database.engine.create_engine

    def counting(url: str):  # type: ignore[no-untyped-def]
        engines.append(url)
        return real_create_engine(url)

    monkeypatch.setattr(database.engine, "create_engine", counting)
    settings = Settings(
        database={"url": f"sqlite+aiosqlite:///{tmp_path / 'api.db'}"},
        slm={"backend": "vllm", "base_url": "http://127.0.0.1:9/v1"},
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        state = app.state
        shared = state.database
        stores = [state.store, state.keys, state.batches, state.files, state.orchestrator.store]
        assert all(store.database is shared for store in stores)
        key, _ = await state.keys.create("app")
        await state.store.save_run(make_run(run_id="api-run"))
        await state.store.add_feedback("api-run", -1.0, "wrong")
        assert await state.keys.admit_request(key)
        await asyncio.sleep(0)  # the batch worker and the registry sync have started
    assert len(engines) == 1, f"engines opened: {engines}"
