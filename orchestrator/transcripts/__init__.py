"""Transcripts: every run with its lead calls and tool calls, the feedback it got, and the spool
that keeps runs the database would not take.

Public names are re-exported here; the modules behind them are not the API.
"""

from orchestrator.transcripts.errors import RunAlreadyRecorded, RunNotFound, TranscriptLost
from orchestrator.transcripts.records import FeedbackRecord, LeadCallRecord, RunRecord
from orchestrator.transcripts.spool import SpoolLimits, SpoolRefused, TranscriptSpool, keep_draining
from orchestrator.transcripts.store import TranscriptStore

__all__ = [
    "FeedbackRecord",
    "LeadCallRecord",
    "RunAlreadyRecorded",
    "RunNotFound",
    "RunRecord",
    "SpoolLimits",
    "SpoolRefused",
    "TranscriptLost",
    "TranscriptSpool",
    "TranscriptStore",
    "keep_draining",
]
