"""What the batch and file stores did not find."""

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
