"""The database: runs with their lead and tool calls, feedback, and API keys with their usage,
in SQLite or PostgreSQL.

Public names are re-exported here; the modules behind them are not the API.
"""

from orchestrator.store.engine import upgrade_database
from orchestrator.store.errors import RunAlreadyRecorded, RunNotFound, StoreError
from orchestrator.store.keys import Admission, ApiKey, KeyNotFound, KeyStore
from orchestrator.store.records import FeedbackRecord, LeadCallRecord, RunRecord, ToolCallRecord
from orchestrator.store.store import TranscriptStore

__all__ = [
    "Admission",
    "ApiKey",
    "FeedbackRecord",
    "KeyNotFound",
    "KeyStore",
    "LeadCallRecord",
    "RunAlreadyRecorded",
    "RunNotFound",
    "RunRecord",
    "StoreError",
    "ToolCallRecord",
    "TranscriptStore",
    "upgrade_database",
]
