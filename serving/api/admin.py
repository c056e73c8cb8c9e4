"""``/v1/admin``: what the operator console does, as an API for admin keys (README: "Admin
API"). The console (``serving/console``) calls the same :mod:`serving.operations`; feedback,
batches and files are the ordinary ``/v1`` endpoints, which admin keys see whole.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field

from distill.jobs import DistillJobStore
from distill.registry import NotInRegistry, RegistryError
from orchestrator.transcripts import RunNotFound, TranscriptStore
from orchestrator.transcripts.analytics import FeedbackFilter, RunAnalytics, RunFilter, Window
from serving import operations
from serving.api.auth import require_api_key
from serving.keys import ApiKey, KeyNotFound, KeyStore
from serving.protocol import ProtocolError
from specialists.errors import UnderstudyError


async def require_admin(key: Annotated[ApiKey, Depends(require_api_key)]) -> ApiKey:
    """The caller's key, if it is an admin key (``understudy keys create --admin``).

    Raises:
        ProtocolError: 403 ``permission_denied`` for any other key.
    """
    if not key.admin:
        raise ProtocolError(
            403,
            "permission_denied",
            "This endpoint needs an admin key; create one with `understudy keys create NAME "
            "--admin`.",
        )
    return key


router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])


@router.get("/overview")
async def overview(request: Request, window: Window = Window.day) -> dict[str, Any]:
    analytics: RunAnalytics = request.app.state.analytics
    return (await analytics.overview(window)).as_dict()


@router.get("/runs")
async def search_runs(
    request: Request,
    mode: str | None = None,
    route: str | None = None,
    specialist: str | None = None,
    degraded: bool | None = None,
    feedback: FeedbackFilter | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    text: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    analytics: RunAnalytics = request.app.state.analytics
    found = await analytics.search(
        RunFilter(mode, route, specialist, degraded, feedback, since, until, text, limit, offset)
    )
    return {"object": "list", "data": [summary.as_dict() for summary in found]}


@router.get("/runs/{run_id}")
async def get_run(run_id: str, request: Request) -> dict[str, Any]:
    store: TranscriptStore = request.app.state.store
    try:
        record = await store.get_run(run_id)
    except RunNotFound as exc:
        raise ProtocolError(404, "run_not_found", str(exc), param="run_id") from exc
    feedback = await store.feedback_for(run_id)
    return {"object": "run", **jsonable_encoder(record), "feedback": jsonable_encoder(feedback)}


@router.get("/specialists")
async def list_versions(request: Request) -> dict[str, Any]:
    versions = await request.app.state.registry.list_versions()
    return {"object": "list", "data": [operations.version_dict(v) for v in versions]}


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int | None = Field(None, ge=1, description="Default: the newest not active.")
    canary: float | None = Field(
        None, ge=0.0, lt=1.0, description="Canary share. Default: UNDERSTUDY_CANARY_SHARE."
    )
    now: bool = Field(False, description="Skip the canary: active at once (operator override).")


@router.post("/specialists/{name}/promote")
async def promote(name: str, body: PromoteRequest, request: Request) -> dict[str, Any]:
    try:
        promoted = await operations.promote(
            request.app.state, name, body.version, canary=body.canary, now=body.now, actor="api"
        )
    except UnderstudyError as exc:
        raise _refused(exc) from exc
    return operations.version_dict(promoted)


@router.post("/specialists/{name}/rollback")
async def rollback(name: str, request: Request) -> dict[str, Any]:
    try:
        retired, restored = await operations.rollback(request.app.state, name, actor="api")
    except UnderstudyError as exc:
        raise _refused(exc) from exc
    return {
        "object": "specialist.rollback",
        "retired": operations.version_dict(retired),
        "restored": None if restored is None else operations.version_dict(restored),
    }


@router.get("/keys")
async def list_keys(request: Request, include_revoked: bool = False) -> dict[str, Any]:
    keys: KeyStore = request.app.state.keys
    found = await keys.list(include_revoked=include_revoked)
    return {"object": "list", "data": [operations.key_dict(k) for k in found]}


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_day: int | None = Field(None, ge=1)
    admin: bool = False


@router.post("/keys")
async def create_key(body: KeyRequest, request: Request) -> dict[str, Any]:
    """The new key with its plaintext (``key``): shown this once, never again."""
    keys: KeyStore = request.app.state.keys
    key, plaintext = await keys.create(
        body.name,
        requests_per_minute=body.requests_per_minute,
        tokens_per_day=body.tokens_per_day,
        admin=body.admin,
    )
    return {**operations.key_dict(key), "key": plaintext}


@router.post("/keys/{key_id}/revoke")
async def revoke_key(key_id: str, request: Request) -> dict[str, Any]:
    keys: KeyStore = request.app.state.keys
    try:
        return operations.key_dict(await keys.revoke(key_id))
    except KeyNotFound as exc:
        raise ProtocolError(404, "key_not_found", str(exc), param="key_id") from exc


@router.get("/proposals")
async def list_proposals(request: Request, status: str | None = None) -> dict[str, Any]:
    found = await request.app.state.registry.list_proposals(status=status)
    return {"object": "list", "data": [operations.proposal_dict(p) for p in found]}


@router.post("/proposals/{proposal_id}/accept")
async def accept_proposal(proposal_id: int, request: Request) -> dict[str, Any]:
    try:
        definition = await operations.accept_proposal(request.app.state, proposal_id)
    except UnderstudyError as exc:
        raise _refused(exc) from exc
    return {"object": "specialist.definition", "name": definition.name}


@router.post("/proposals/{proposal_id}/dismiss")
async def dismiss_proposal(proposal_id: int, request: Request) -> dict[str, Any]:
    try:
        proposal = await request.app.state.registry.dismiss_proposal(proposal_id)
    except UnderstudyError as exc:
        raise _refused(exc) from exc
    return operations.proposal_dict(proposal)


@router.get("/distill/jobs")
async def list_jobs(
    request: Request, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> dict[str, Any]:
    jobs: DistillJobStore = request.app.state.distill_jobs
    return {
        "object": "list",
        "data": [operations.job_dict(j) for j in await jobs.list(limit=limit)],
    }


def _refused(exc: UnderstudyError) -> ProtocolError:
    """A registry refusal as the API says it: 404 for what is not there, else 409."""
    if isinstance(exc, NotInRegistry):
        return ProtocolError(404, "not_found", str(exc))
    code = "promotion_refused" if isinstance(exc, RegistryError) else "refused"
    return ProtocolError(409, code, str(exc))
