"""The worker's pre-router retraining (``understudy worker --kind prerouter``): nothing until
enough new routing labels and cascade outcomes are in the transcripts, then a version trained on
them, its difficulty skip included (real database, real seed data, the static embedding)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from distill.prerouter.retrain import retrain_if_due
from distill.prerouter.training import TrainingOutcome
from distill.prerouter.versions import RouterVersions
from evals.data import DataSource
from orchestrator.prerouter_static import StaticEmbedder
from orchestrator.transcripts import TranscriptStore
from specialists.catalog import Catalog
from tests.helpers.stores import open_store
from tests.orchestrator.test_transcripts import T0, make_run


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[TranscriptStore]:
    opened = await open_store(TranscriptStore, database_url)
    yield opened
    await opened.database.close()


async def test_retraining_waits_for_enough_new_labels_and_counts_cascade_outcomes(
    store: TranscriptStore, tmp_path: Path, data_dir: Path, static_dir: Path
) -> None:
    for i in range(20):
        await store.save_run(
            make_run(
                input_messages=[{"role": "user", "content": f"What is {i} times {i + 3}?"}],
                route="cascade:accepted:math" if i % 2 else "cascade:escalated:math",
                escalated=not i % 2,
                created_at=T0 - timedelta(minutes=i),
            )
        )
    versions, logs = RouterVersions(tmp_path), list[str]()

    async def retrain(min_new_labels: int) -> TrainingOutcome | None:
        return await retrain_if_due(
            DataSource(data_dir),
            Catalog.default(),
            store,
            versions,
            StaticEmbedder(static_dir),
            min_new_labels=min_new_labels,
            log=logs.append,
        )

    # 20 cascade runs: 10 accepted answers (routing labels) and 20 outcomes = 30 new labels.
    assert await retrain(31) is None and versions.list() == [] and logs == []
    trained = await retrain(30)
    assert trained is not None
    assert logs[0] == "prerouter: 30 new routing labels and cascade outcomes; retraining"
    assert (trained.version.transcript_labels, trained.version.difficulty_labels) == (10, 20)
    assert "too few cascade outcomes" in trained.difficulty.gate["reason"]
    # A promoted version learned them all; a refused one leaves them new.
    assert (await retrain(1) is None) == trained.promoted
