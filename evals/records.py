"""What one evaluated item leaves behind: the run's figures, its score, and the cascade's draft.

One :class:`ItemResult` per (sample, mode). It is the unit the cache stores, the line the per-mode
result files hold, and all the metrics and the report are computed from — so it keeps every
figure they need and nothing that would make a line large (no transcripts; those stay in the
evaluation's own transcript store, under ``run_id``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Draft(BaseModel):
    """The specialist's first answer in a cascade run, accepted or not.

    Kept so that the accuracy/cost curve over the cascade's confidence threshold can be computed
    offline: at any threshold, an item whose draft is valid and at least that confident would
    have been answered by the draft.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    specialist: str
    confidence: float
    """The draft's mean token probability (what the cascade compares with the threshold)."""
    valid: bool
    """Whether the specialist's output validator passed (the cascade's second condition)."""
    score: float = Field(ge=0, le=1)
    """The suite's score of the draft itself."""
    cost_usd: float = Field(ge=0)
    """What the draft cost: the run's SLM cost. Exact when the draft was accepted; when it was
    escalated, an upper bound (it also counts specialist calls the lead made afterwards)."""


class ItemResult(BaseModel):
    """One sample answered in one mode, and how well."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    suite: str
    sample_id: str
    mode: str
    config_hash: str
    """Hash of all that determines the answer (:func:`evals.cache.config_fingerprint`)."""
    run_id: str
    """The run's transcript in the evaluation's store."""
    answer: str | None
    route: str
    specialists: list[str] = Field(default_factory=list)
    escalated: bool = False
    degraded: bool = False
    confidence: float | None = None
    error: str | None = None
    lead_tokens: int = Field(ge=0)
    slm_tokens: int = Field(ge=0)
    cost_usd: float = Field(ge=0)
    slm_cost_usd: float = Field(ge=0)
    """The part of ``cost_usd`` spent on specialist tokens."""
    lead_only_cost_usd: float = Field(ge=0)
    latency_ms: float = Field(ge=0)
    tool_calls: int = Field(ge=0)
    """Tool calls in the run's transcript, the specialist calls the orchestrator made itself
    (``slm`` mode, the cascade's draft) included."""
    score: float = Field(ge=0, le=1)
    score_details: dict[str, Any] = Field(default_factory=dict)
    draft: Draft | None = None
    """Cascade runs in which a specialist answered first; ``None`` elsewhere."""

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What the cache files it under."""
        return (self.suite, self.sample_id, self.mode, self.config_hash)

    @property
    def without_lead(self) -> bool:
        """Answered, and the lead spent no token on it."""
        return self.answer is not None and self.lead_tokens == 0

    @property
    def cacheable(self) -> bool:
        """Clean runs only: a failed or degraded run (a dead lead, a timeout) is retried on the
        next run instead of being kept as the item's answer."""
        return self.answer is not None and self.error is None and not self.degraded
