"""What one evaluated item leaves behind: the run's result, its score, and the cascade's draft.

One :class:`ItemResult` per (sample, mode). It is the unit the cache stores, the line the per-mode
result files hold, and all the metrics and the report are computed from. It *is* the run's
:class:`~orchestrator.outcome.RunResult` (every figure of the run, its failure included) plus the
evaluation's own fields — and nothing that would make a line large (no transcripts; those stay
in the evaluation's own transcript store, under ``run_id``).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.dataclasses import dataclass

from orchestrator.outcome import RunResult


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


@dataclass(frozen=True, kw_only=True, config=ConfigDict(extra="forbid"))
class ItemResult(RunResult):
    """One sample answered in one mode (the run's result), and how well.

    Validated on construction and when read back (:func:`item_from_json`): a line of another
    shape (an older release's, a torn write) is refused, never half-read.
    """

    suite: str
    sample_id: str
    config_hash: str
    """Hash of all that determines the answer (:func:`evals.cache.config_fingerprint`)."""
    slm_cost_usd: Annotated[float, Field(ge=0)]
    """The part of ``cost_usd`` spent on specialist tokens."""
    tool_calls: Annotated[int, Field(ge=0)]
    """Tool calls in the run's transcript, the specialist calls the orchestrator made itself
    (``slm`` mode, the cascade's draft) included."""
    score: Annotated[float, Field(ge=0, le=1)]
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
        return self.answer is not None and self.failure is None and not self.degraded


_ITEM = TypeAdapter(ItemResult)


def item_to_json(item: ItemResult) -> str:
    """``item`` as one JSON line (without the newline)."""
    return _ITEM.dump_json(item).decode()


def item_from_json(line: str | bytes) -> ItemResult:
    """An item written by :func:`item_to_json`.

    Raises:
        pydantic.ValidationError: ``line`` is not one.
    """
    return _ITEM.validate_json(line)
