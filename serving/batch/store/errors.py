"""What the batch and file stores did not find, or no longer hold."""

from __future__ import annotations

from datetime import datetime

from specialists.errors import UnderstudyError


class BatchNotFound(UnderstudyError):
    """No batch job with this id is stored.

    Args:
        batch_id: The id that was looked up.
    """

    def __init__(self, batch_id: str) -> None:
        self.batch_id = batch_id
        super().__init__(f"no batch job with id {batch_id!r} (see `understudy batch list`)")


class FileNotFound(UnderstudyError):
    """No stored file with this id.

    Args:
        file_id: The id that was looked up.
        message: Why it is not found, when more is known than that.
    """

    def __init__(self, file_id: str, message: str | None = None) -> None:
        self.file_id = file_id
        super().__init__(message or f"no file with id {file_id!r}")


class FileExpired(FileNotFound):
    """The file existed, and expired (its ``expires_after`` or its batch's
    ``output_expires_after``): it is as gone as a missing one, and says why.

    Args:
        file_id: The id that was looked up.
        expired_at: When it expired.
    """

    def __init__(self, file_id: str, expired_at: datetime) -> None:
        self.expired_at = expired_at
        when = expired_at.isoformat(timespec="seconds")
        super().__init__(file_id, f"the file {file_id!r} expired at {when} and was deleted")


class ValidationLost(UnderstudyError):
    """A validator's claim on a job no longer holds: the job was cancelled, or its lease
    expired and another worker took the validation over. Nothing more may be written under it.

    Args:
        job_id: The job whose validation was lost.
    """

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(
            f"the validation of {job_id} is no longer this worker's: the job was cancelled, "
            "or another worker took it over"
        )
