"""Estimated times of arrival from progress rates: a running batch's and a distillation job's
training, for the console and ``/v1/admin``.

The rate is what was done since the work started over the time it took, and the ETA assumes it
holds for what is left. Nothing is estimated where nothing is known yet (nothing done, no time
gone by) or nothing is left.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from distill.progress import TrainingProgress
from serving.batch.store import BatchJob, BatchProgress


def eta(done: float, left: float, since: datetime, at: datetime) -> datetime | None:
    """When ``left`` more units are done, at the rate ``done`` took from ``since`` to ``at``."""
    elapsed_s = (at - since).total_seconds()
    if done <= 0 or left <= 0 or elapsed_s <= 0:
        return None
    return at + timedelta(seconds=left * elapsed_s / done)


def training_eta(progress: TrainingProgress) -> datetime | None:
    """The end of a job's training, at this attempt's rate (steps since it started or resumed)."""
    return eta(
        progress.step - progress.start_step,
        progress.total_steps - progress.step,
        progress.started_at,
        progress.updated_at,
    )


def batch_eta(job: BatchJob, progress: BatchProgress, now: datetime) -> datetime | None:
    """The end of a batch in progress, at the rate its items finished since it started."""
    if job.status != "in_progress" or job.started_at is None:
        return None
    return eta(progress.done, progress.pending + progress.running, job.started_at, now)


def describe(moment: datetime, now: datetime) -> str:
    """How a page says an ETA: ``in 4 min (13:05 UTC)``."""
    minutes = max(0, round((moment - now).total_seconds() / 60))
    wait = "in under a minute" if minutes == 0 else _minutes(minutes)
    return f"{wait} ({moment.strftime('%H:%M')} UTC)"


def _minutes(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    return f"in {minutes} min" if not hours else f"in {hours} h {rest:02d} min"
