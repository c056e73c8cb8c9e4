"""The database: runs with their lead and tool calls, feedback, API keys with their usage,
batch jobs with their items and files, and the specialist registry with its distillation jobs,
in SQLite or PostgreSQL.

Public names are re-exported here; the modules behind them are not the API.
"""

from orchestrator.store.batches import (
    BatchJob,
    BatchProgress,
    BatchStore,
    ClaimedItem,
    ItemOutput,
    ItemResult,
    NewItem,
    WorkerInfo,
)
from orchestrator.store.distill_jobs import DistillJob, DistillJobStore
from orchestrator.store.engine import upgrade_database
from orchestrator.store.errors import (
    BatchNotFound,
    FileNotFound,
    RunAlreadyRecorded,
    RunNotFound,
    StoreError,
)
from orchestrator.store.files import FileDigest, FileStore, StoredFile
from orchestrator.store.keys import Admission, ApiKey, KeyNotFound, KeyStore
from orchestrator.store.records import FeedbackRecord, LeadCallRecord, RunRecord, ToolCallRecord
from orchestrator.store.registry import (
    NotInRegistry,
    PromotionRefused,
    Proposal,
    ProposalDraft,
    RegistryError,
    RegistrySnapshot,
    RegistryStore,
    SpecialistDefinition,
    SpecialistVersion,
    promotion_refusal,
)
from orchestrator.store.store import TranscriptStore

__all__ = [
    "Admission",
    "ApiKey",
    "BatchJob",
    "BatchNotFound",
    "BatchProgress",
    "BatchStore",
    "ClaimedItem",
    "DistillJob",
    "DistillJobStore",
    "FeedbackRecord",
    "FileDigest",
    "FileNotFound",
    "FileStore",
    "ItemOutput",
    "ItemResult",
    "KeyNotFound",
    "KeyStore",
    "LeadCallRecord",
    "NewItem",
    "NotInRegistry",
    "PromotionRefused",
    "Proposal",
    "ProposalDraft",
    "RegistryError",
    "RegistrySnapshot",
    "RegistryStore",
    "RunAlreadyRecorded",
    "RunNotFound",
    "RunRecord",
    "SpecialistDefinition",
    "SpecialistVersion",
    "StoreError",
    "StoredFile",
    "ToolCallRecord",
    "TranscriptStore",
    "WorkerInfo",
    "promotion_refusal",
    "upgrade_database",
]
