"""An answer waiting for its audit (:class:`AuditCandidate`), one claimed from the queue
(:class:`ClaimedAudit`), and how it is settled (:class:`AuditVerdict`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from specialists.backend import ChatMessage


@dataclass(frozen=True, slots=True)
class AuditCandidate:
    """A specialist answer no lead checked, as the audit queue keeps it."""

    run_id: str
    specialist: str
    version: str
    """The version's tag (``v3-1f2e3d4c``), an adapter's content tag, or ``base``."""
    judge: str
    """The agreement judge for its kind (the specialist's validator name)."""
    messages: list[ChatMessage]
    """The request, as the lead will be asked it again."""
    answer: str
    source: str
    """``cascade`` (accepted), ``slm`` or ``router`` (passed through by the lead)."""
    confidence: float | None = None
    """The specialist's confidence in ``answer`` (the mean token probability the cascade
    compares with the threshold): what a threshold re-fit reads. ``None``: not known."""


@dataclass(frozen=True, slots=True)
class ClaimedAudit:
    """A queued audit a worker holds under a lease; it commits only under this claim."""

    id: int
    candidate: AuditCandidate
    attempts: int
    """How often it was claimed, this claim included."""


@dataclass(frozen=True, slots=True)
class AuditVerdict:
    """The lead's answer to the same request, and whether the specialist's agreed with it."""

    lead_answer: str
    agreed: bool
    score: float
    """The judge's figure (1/0 for exact checks, ROUGE-L for text)."""
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AuditedAnswer:
    """A judged audit as a threshold re-fit reads it: how confident the specialist was, and
    whether the lead agreed."""

    confidence: float
    agreed: bool
    score: float
