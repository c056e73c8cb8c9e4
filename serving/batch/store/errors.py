"""What the batch and file stores did not find, or no longer hold."""

from __future__ import annotations

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
    """

    def __init__(self, file_id: str) -> None:
        self.file_id = file_id
        super().__init__(f"no file with id {file_id!r}")


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
