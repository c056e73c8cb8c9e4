"""A training's progress log: what the trainer's thread reports, read as changed readings, its
loss curve thinned to a bounded size, an earlier attempt's curve kept on resuming."""

from __future__ import annotations

from datetime import UTC, datetime

from distill.progress import MAX_POINTS, ProgressLog, TrainingProgress


def test_a_reading_is_given_once_per_change() -> None:
    log = ProgressLog()
    log.step(1, 2.0)  # before training started: nothing to report
    assert log.reading() is None
    log.started(0, 10)
    first = log.reading()
    assert first is not None and (first.step, first.total_steps, first.losses) == (0, 10, ())
    assert log.reading() is None  # unchanged since
    log.step(1, 2.0)
    log.step(2, 1.5)
    second = log.reading()
    assert second is not None and second.step == 2 and second.losses == ((1, 2.0), (2, 1.5))
    assert second.updated_at >= second.started_at == first.started_at


def test_the_curve_stays_bounded_and_keeps_its_newest_point() -> None:
    log = ProgressLog()
    log.started(0, 10_000)
    for step in range(1, 1001):
        log.step(step, 1.0 / step)
    reading = log.reading()
    assert reading is not None
    steps = [step for step, _ in reading.losses]
    assert MAX_POINTS // 2 <= len(steps) <= MAX_POINTS
    assert steps[-1] == 1000 and steps == sorted(steps) and steps[0] < 50


def test_a_resumed_attempt_keeps_the_curve_up_to_its_checkpoint() -> None:
    at = datetime(2026, 12, 4, tzinfo=UTC)
    earlier = TrainingProgress(7, 20, 0, at, at, ((2, 3.0), (4, 2.0), (6, 1.5), (7, 1.4)))
    log = ProgressLog(earlier)
    log.started(4, 20)
    log.step(5, 1.9)
    reading = log.reading()
    assert reading is not None and reading.start_step == 4
    assert reading.losses == ((2, 3.0), (4, 2.0), (5, 1.9))
    assert TrainingProgress.from_dict(reading.as_dict()) == reading
