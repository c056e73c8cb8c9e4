"""What batch callers see: jobs, their progress, items in and results out.

Plain frozen dataclasses; the rows they come from stay in :mod:`~.batches`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from database.tables import ITEM_STATUSES
from orchestrator.outcome import RunResult

CHAT_ENDPOINT = "/v1/chat/completions"
RESPONSES_ENDPOINT = "/v1/responses"
"""The endpoints a batch may address; every line of a job addresses the job's one."""
FINAL_STATUSES = frozenset({"failed", "completed", "cancelled"})
"""Job statuses that never change again."""


@dataclass(frozen=True)
class BatchJob:
    """A job as callers see it; its progress is :meth:`BatchStore.progress`."""

    id: str
    status: str
    """``validating`` (a worker checks its input) → ``in_progress`` → ``completed``; or
    ``failed`` (its input was invalid); or ``cancelling`` → ``cancelled`` (at once while
    ``validating``)."""
    endpoint: str
    mode: str
    """Mode of the requests whose ``model`` is not an Understudy model name."""
    input_name: str
    input_file_id: str | None
    output_file_id: str | None
    error_file_id: str | None
    completion_window: str
    metadata: dict[str, Any] | None
    errors: list[dict[str, Any]] | None
    """Why validation failed: ``{"line", "code", "message", "param"}`` per bad input line
    (``line`` None when the input itself is gone)."""
    total: int
    owner_key_id: str | None
    """The API key it belongs to, and its output and error files with it; None: made with
    authentication off, by the CLI, or before ownership."""
    output_expires_after_s: int | None
    """Its output and error files expire this long after they are made; None: never."""
    created_at: datetime
    started_at: datetime | None
    cancel_requested_at: datetime | None
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class BatchProgress:
    """Items by status, and what the finished ones used and cost."""

    pending: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    lead_tokens: int = 0
    slm_tokens: int = 0
    cost_usd: float = 0.0
    lead_only_cost_usd: float = 0.0
    """What the same tokens would have cost on the lead alone (``llm`` mode's price)."""
    answered_without_lead: int = 0
    """Succeeded items the lead never saw (a specialist's answer was accepted)."""

    @property
    def total(self) -> int:
        return self.pending + self.running + self.done

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.cancelled

    @property
    def saved_usd(self) -> float:
        return max(0.0, self.lead_only_cost_usd - self.cost_usd)


@dataclass(frozen=True)
class NewItem:
    """One input line to store: a valid request, or (``output`` set) an invalid line's error."""

    line: int
    custom_id: str | None
    body: dict[str, Any] | None
    output: str | None = None
    """The error line of an invalid request, stored as failed so nothing is silently lost."""


@dataclass(frozen=True)
class ClaimedItem:
    """An item a worker holds under its lease."""

    job_id: str
    line: int
    custom_id: str
    body: dict[str, Any]
    claims: int
    """1 on the first claim; more means an earlier worker may have started it."""
    mode: str
    """The job's mode."""
    owner_key_id: str | None = None
    """The API key that created the job (``None``: made by the CLI, or with authentication
    off): its degradation policy applies to lines that set none."""
    endpoint: str = CHAT_ENDPOINT
    """The job's endpoint: what shape its lines' bodies and answers have."""


@dataclass(frozen=True)
class ItemResult:
    """The outcome of one item, committed with :meth:`BatchStore.complete`."""

    output: str
    """The output file line (or error file line, when it failed), without the newline."""
    run: RunResult | None = None
    """The run that answered the item, or failed to; ``None`` when it was refused before it
    could run (nothing spent)."""
    answer_refused: bool = False
    """The run answered, but the line does not take the answer (a degraded one, under
    ``understudy.on_degraded: error``): an error line."""

    @property
    def succeeded(self) -> bool:
        """The run answered and the line takes the answer; the line is an output line."""
        return self.run is not None and self.run.answer is not None and not self.answer_refused


@dataclass(frozen=True)
class ItemOutput:
    """A finished item as output and error files list it."""

    line: int
    custom_id: str | None
    status: str
    output: str | None
    """None for items cancelled before they ran."""


def job_from_row(values: Any) -> BatchJob:
    return BatchJob(
        id=values["id"],
        status=values["status"],
        endpoint=values["endpoint"],
        mode=values["mode"],
        input_name=values["input_name"],
        input_file_id=values["input_file_id"],
        output_file_id=values["output_file_id"],
        error_file_id=values["error_file_id"],
        completion_window=values["completion_window"],
        metadata=values["metadata"],
        errors=values["errors"],
        total=values["total"],
        owner_key_id=values["owner_key_id"],
        output_expires_after_s=values["output_expires_after_s"],
        created_at=values["created_at"],
        started_at=values["started_at"],
        cancel_requested_at=values["cancel_requested_at"],
        finished_at=values["finished_at"],
    )


def progress_from_sums(rows: dict[str, Sequence[Any]]) -> BatchProgress:
    """One job's progress from its per-status sums (count, lead tokens, SLM tokens, cost,
    lead-only cost, items without lead tokens)."""
    none = (0, 0, 0, 0.0, 0.0, 0)
    return BatchProgress(
        **{status: int(rows.get(status, none)[0]) for status in ITEM_STATUSES},
        lead_tokens=sum(int(row[1]) for row in rows.values()),
        slm_tokens=sum(int(row[2]) for row in rows.values()),
        cost_usd=sum(float(row[3]) for row in rows.values()),
        lead_only_cost_usd=sum(float(row[4]) for row in rows.values()),
        answered_without_lead=int(rows.get("succeeded", none)[5]),
    )
