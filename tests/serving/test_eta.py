"""ETAs from progress rates: known values, and nothing estimated where nothing is known."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from distill.progress import TrainingProgress
from serving.batch.store import BatchJob, BatchProgress
from serving.eta import batch_eta, describe, eta, training_eta

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_the_rate_so_far_is_assumed_to_hold() -> None:
    assert eta(10, 30, T0, T0 + timedelta(minutes=1)) == T0 + timedelta(minutes=4)
    assert eta(0, 30, T0, T0 + timedelta(minutes=1)) is None  # no rate yet
    assert eta(10, 0, T0, T0 + timedelta(minutes=1)) is None  # nothing left
    assert eta(10, 30, T0, T0) is None


def test_a_resumed_training_is_timed_from_where_it_resumed() -> None:
    progress = TrainingProgress(60, 100, 40, T0, T0 + timedelta(seconds=20))
    # 20 steps in 20 s since resuming at step 40; 40 left.
    assert training_eta(progress) == T0 + timedelta(seconds=60)
    assert training_eta(replace(progress, step=100)) is None


def test_only_a_batch_in_progress_has_an_eta() -> None:
    job = BatchJob(
        id="batch_1", status="in_progress", endpoint="/v1/chat/completions", mode="llm",
        input_name="in.jsonl", input_file_id=None, output_file_id=None, error_file_id=None,
        completion_window="24h", metadata=None, errors=None, total=100, owner_key_id=None,
        output_expires_after_s=None, created_at=T0, started_at=T0, cancel_requested_at=None,
        finished_at=None,
    )  # fmt: skip
    progress = BatchProgress(pending=70, running=5, succeeded=20, failed=5)
    now = T0 + timedelta(minutes=5)
    assert batch_eta(job, progress, now) == now + timedelta(minutes=15)
    assert batch_eta(replace(job, status="cancelling"), progress, now) is None
    assert batch_eta(replace(job, started_at=None), progress, now) is None


def test_an_eta_is_said_in_minutes_and_as_a_time() -> None:
    assert describe(T0 + timedelta(seconds=20), T0) == "in under a minute (12:00 UTC)"
    assert describe(T0 + timedelta(minutes=4), T0) == "in 4 min (12:04 UTC)"
    assert describe(T0 + timedelta(minutes=125), T0) == "in 2 h 05 min (14:05 UTC)"
