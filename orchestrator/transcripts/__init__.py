"""Transcripts: every run with its lead calls and tool calls, and the feedback it got.

Public names are re-exported here; the modules behind them are not the API.
"""

from orchestrator.transcripts.errors import RunAlreadyRecorded, RunNotFound
from orchestrator.transcripts.records import FeedbackRecord, LeadCallRecord, RunRecord
from orchestrator.transcripts.store import TranscriptStore

__all__ = [
    "FeedbackRecord",
    "LeadCallRecord",
    "RunAlreadyRecorded",
    "RunNotFound",
    "RunRecord",
    "TranscriptStore",
]
