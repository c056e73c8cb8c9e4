"""``POST /v1/feedback``: users score runs; distillation filters on it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from orchestrator.transcripts import RunNotFound, TranscriptStore
from serving.api.auth import ApiKeyDep
from serving.api.errors import ApiError
from serving.api.schemas import FeedbackRequest

router = APIRouter(prefix="/v1", tags=["feedback"])


@router.post("/feedback")
async def add_feedback(body: FeedbackRequest, request: Request, _key: ApiKeyDep) -> dict[str, Any]:
    store: TranscriptStore = request.app.state.store
    try:
        record = await store.add_feedback(body.run_id, body.score, body.comment)
    except RunNotFound as exc:
        raise ApiError(404, "run_not_found", str(exc), param="run_id") from exc
    return {
        "object": "feedback",
        "run_id": record.run_id,
        "score": record.score,
        "comment": record.comment,
        "created_at": record.created_at.isoformat(),
    }
