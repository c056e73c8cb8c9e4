"""Batch jobs, their items, the workers running them, and the files of ``/v1/files``.

Public names are re-exported here; the modules behind them are not the API.
"""

from serving.batch.store.batches import BatchStore
from serving.batch.store.errors import (
    BatchNotFound,
    FileExpired,
    FileNotFound,
    ValidationLost,
)
from serving.batch.store.files import FileDigest, FileStore, StoredFile
from serving.batch.store.records import (
    CHAT_ENDPOINT,
    FINAL_STATUSES,
    RESPONSES_ENDPOINT,
    BatchJob,
    BatchProgress,
    ClaimedItem,
    ItemOutput,
    ItemResult,
    NewItem,
)
from serving.batch.store.validations import ValidationClaim, ValidationStore
from serving.batch.store.workers import WorkerInfo, WorkerStore

__all__ = [
    "CHAT_ENDPOINT",
    "FINAL_STATUSES",
    "RESPONSES_ENDPOINT",
    "BatchJob",
    "BatchNotFound",
    "BatchProgress",
    "BatchStore",
    "ClaimedItem",
    "FileDigest",
    "FileExpired",
    "FileNotFound",
    "FileStore",
    "ItemOutput",
    "ItemResult",
    "NewItem",
    "StoredFile",
    "ValidationClaim",
    "ValidationLost",
    "ValidationStore",
    "WorkerInfo",
    "WorkerStore",
]
