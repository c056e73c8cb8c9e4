"""``POST /v1/feedback``: users score runs; distillation filters on it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.transcripts import RunNotFound, TranscriptStore
from serving.api.auth import ApiKeyDep
from serving.protocol import ProtocolError

router = APIRouter(prefix="/v1", tags=["feedback"])


class FeedbackRequest(BaseModel):
    """``POST /v1/feedback``: a score for a run (from the ``understudy.run_id`` of a reply)."""

    model_config = ConfigDict(extra="forbid")
    run_id: str = Field(min_length=1, max_length=64)
    score: float = Field(ge=-1.0, le=1.0, description="-1 (bad) to 1 (good).")
    comment: str | None = Field(None, max_length=4000)


@router.post("/feedback")
async def add_feedback(body: FeedbackRequest, request: Request, _key: ApiKeyDep) -> dict[str, Any]:
    store: TranscriptStore = request.app.state.store
    try:
        record = await store.add_feedback(body.run_id, body.score, body.comment)
    except RunNotFound as exc:
        raise ProtocolError(404, "run_not_found", str(exc), param="run_id") from exc
    return {
        "object": "feedback",
        "run_id": record.run_id,
        "score": record.score,
        "comment": record.comment,
        "created_at": record.created_at.isoformat(),
    }
