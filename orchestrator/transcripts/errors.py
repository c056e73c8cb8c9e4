"""What the transcript store did not find, or would not overwrite."""

from __future__ import annotations

from specialists.errors import UnderstudyError


class RunNotFound(UnderstudyError):
    """No run with this id is stored.

    Args:
        run_id: The id that was looked up.
    """

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r} in the transcript store")


class RunAlreadyRecorded(UnderstudyError):
    """A run with this id is already stored; the store wrote nothing.

    Batch jobs re-run after a crash rely on this to never store an answer twice.

    Args:
        run_id: The id that is already taken.
    """

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id!r} is already recorded; runs are never overwritten")
