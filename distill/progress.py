"""How far a distillation job's training got: its step, its total, and its loss curve.

The worker trains in a thread; :class:`ProgressLog` collects what the trainer reports there
(thread-safe) and the job's event loop stores a :meth:`ProgressLog.reading` every few seconds
(:meth:`~distill.jobs.DistillJobStore.record_training`), so the console can show a job's
step, an ETA and its loss curve while it trains. The curve keeps at most ``MAX_POINTS``
points, thinned evenly as training goes on, so the row stays small however long it trains.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

MAX_POINTS = 120
"""Loss points kept per job: enough for a curve, small enough for a row read every poll."""


@dataclass(frozen=True, slots=True)
class TrainingProgress:
    """One reading of a job's training."""

    step: int
    total_steps: int
    start_step: int
    """The step this attempt started from: 0, or a checkpoint's step when it resumed."""
    started_at: datetime
    """When this attempt's training started: with ``start_step``, the rate its ETA uses."""
    updated_at: datetime
    losses: tuple[tuple[int, float], ...] = ()
    """``(step, loss)`` pairs, oldest first, at most :data:`MAX_POINTS`."""

    def as_dict(self) -> dict[str, Any]:
        """As the job's row (and the admin API) holds it."""
        return {
            "step": self.step,
            "total_steps": self.total_steps,
            "start_step": self.start_step,
            "started_at": self.started_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "losses": [[step, loss] for step, loss in self.losses],
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingProgress:
        return cls(
            step=int(values["step"]),
            total_steps=int(values["total_steps"]),
            start_step=int(values["start_step"]),
            started_at=datetime.fromisoformat(values["started_at"]),
            updated_at=datetime.fromisoformat(values["updated_at"]),
            losses=tuple((int(step), float(loss)) for step, loss in values["losses"]),
        )


class ProgressLog:
    """Collects the trainer's reports from its thread; read from the event loop.

    Args:
        earlier: The job's last reading, from an earlier attempt: its curve up to the step
            this attempt resumes from is kept, so a resumed job shows its whole curve.
    """

    def __init__(self, earlier: TrainingProgress | None = None) -> None:
        self._earlier = earlier
        self._lock = threading.Lock()
        self._current: TrainingProgress | None = None
        self._changed = False

    def started(self, step: int, total_steps: int) -> None:
        at = datetime.now(UTC)
        kept = tuple(p for p in self._earlier.losses if p[0] <= step) if self._earlier else ()
        with self._lock:
            self._current = TrainingProgress(step, total_steps, step, at, at, kept)
            self._changed = True

    def step(self, step: int, loss: float) -> None:
        with self._lock:
            if self._current is None:
                return
            losses = _thinned((*self._current.losses, (step, loss)))
            self._current = replace(
                self._current, step=step, updated_at=datetime.now(UTC), losses=losses
            )
            self._changed = True

    def reading(self) -> TrainingProgress | None:
        """The latest reading if it changed since the last call, else ``None``."""
        with self._lock:
            changed, self._changed = self._changed, False
            return self._current if changed else None


def _thinned(points: tuple[tuple[int, float], ...]) -> tuple[tuple[int, float], ...]:
    """Every other point once there are more than :data:`MAX_POINTS` (the newest kept)."""
    if len(points) <= MAX_POINTS:
        return points
    return points[-1::-2][::-1]
