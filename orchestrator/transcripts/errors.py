"""What the transcript store did not find or would not overwrite, and a record lost to a
failing database."""

from __future__ import annotations

from database import StoreError
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


class TranscriptLost(StoreError):
    """A run's record reached neither the database nor the spool: the run must not count as
    done. Callers treat it as the database failure it is (the chat API answers 503, the batch
    runner leaves the item claimed and tries again).

    Args:
        run_id: The run that was not recorded.
        cause: Why the database refused it.
        spool_reason: Why the spool refused it too.
    """

    def __init__(self, run_id: str, cause: StoreError, spool_reason: str) -> None:
        self.run_id = run_id
        reason = f"{cause.reason}; run {run_id} could not be spooled either: {spool_reason}"
        super().__init__(cause.operation, url=cause.url, reason=reason)
