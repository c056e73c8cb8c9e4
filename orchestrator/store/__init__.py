"""The transcript store: runs, their lead and tool calls, and feedback, in SQLite or PostgreSQL.

Public names are re-exported here; the modules behind them are not the API.
"""

from orchestrator.store.engine import upgrade_database
from orchestrator.store.errors import RunAlreadyRecorded, RunNotFound, StoreError
from orchestrator.store.records import FeedbackRecord, LeadCallRecord, RunRecord, ToolCallRecord
from orchestrator.store.store import TranscriptStore

__all__ = [
    "FeedbackRecord",
    "LeadCallRecord",
    "RunAlreadyRecorded",
    "RunNotFound",
    "RunRecord",
    "StoreError",
    "ToolCallRecord",
    "TranscriptStore",
    "upgrade_database",
]
