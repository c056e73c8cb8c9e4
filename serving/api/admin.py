"""``/v1/admin``: what the operator console does, as an API for admin keys (README: "Admin
API"). The console (``serving/console``) calls the same :mod:`serving.operations`; feedback,
batches and files are the ordinary ``/v1`` endpoints, which admin keys see whole.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from database.tables import (
    KEY_ID_LENGTH,
    KEY_NAME_LENGTH,
    MAX_REQUESTS_PER_MINUTE,
    MAX_TOKENS_PER_DAY,
    RUN_ID_LENGTH,
    SPECIALIST_NAME_LENGTH,
)
from distill.jobs import DistillJobStore
from distill.registry import NotInRegistry, PauseConflict, RegistryError
from orchestrator.transcripts import RunNotFound, TranscriptStore
from orchestrator.transcripts.analytics import (
    SEARCH_LIMIT_MAX,
    SEARCH_OFFSET_MAX,
    FeedbackFilter,
    RunAnalytics,
    RunFilter,
    RunFilterError,
    Window,
)
from serving import operations
from serving.api.auth import require_api_key
from serving.keys import ApiKey, KeyNotFound, KeyStore
from serving.protocol import ProtocolError
from specialists.errors import UnderstudyError, UnknownSpecialistError


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

# Every input is bounded: an id the database cannot hold is a 422, never a driver error.
RunIdPath = Annotated[str, Path(min_length=1, max_length=RUN_ID_LENGTH, description="A run id.")]
KeyIdPath = Annotated[str, Path(min_length=1, max_length=KEY_ID_LENGTH, description="A key id.")]
SpecialistPath = Annotated[
    str,
    Path(min_length=1, max_length=SPECIALIST_NAME_LENGTH, description="A specialist, e.g. math."),
]
ProposalIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="A proposal id.")]
ShortText = Annotated[str | None, Query(min_length=1, max_length=64)]


@router.get("/overview")
async def overview(request: Request, window: Window = Window.day) -> dict[str, Any]:
    analytics: RunAnalytics = request.app.state.analytics
    return (await analytics.overview(window)).as_dict()


@router.get("/runs")
async def search_runs(
    request: Request,
    mode: ShortText = None,
    route: ShortText = None,
    specialist: ShortText = None,
    degraded: bool | None = None,
    feedback: FeedbackFilter | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    text: Annotated[str | None, Query(min_length=1, max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=SEARCH_LIMIT_MAX)] = 50,
    offset: Annotated[int, Query(ge=0, le=SEARCH_OFFSET_MAX)] = 0,
) -> dict[str, Any]:
    """Runs, newest first. Moments without a zone are UTC; a ``text`` search spans a day at
    most (by default the day before ``until``)."""
    try:
        where = RunFilter(
            mode, route, specialist, degraded, feedback, since, until, text, limit, offset
        )
    except RunFilterError as exc:
        raise ProtocolError(400, "invalid_filter", str(exc)) from exc
    analytics: RunAnalytics = request.app.state.analytics
    found = await analytics.search(where)
    return {"object": "list", "data": [summary.as_dict() for summary in found]}


@router.get("/runs/{run_id}")
async def get_run(run_id: RunIdPath, request: Request) -> dict[str, Any]:
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
async def promote(name: SpecialistPath, body: PromoteRequest, request: Request) -> dict[str, Any]:
    try:
        promoted = await operations.promote(
            request.app.state, name, body.version, canary=body.canary, now=body.now, actor="api"
        )
    except UnderstudyError as exc:
        raise _refused(exc) from exc
    return operations.version_dict(promoted)


@router.post("/specialists/{name}/rollback")
async def rollback(name: SpecialistPath, request: Request) -> dict[str, Any]:
    try:
        retired, restored = await operations.rollback(request.app.state, name, actor="api")
    except UnderstudyError as exc:
        raise _refused(exc) from exc
    return {
        "object": "specialist.rollback",
        "retired": operations.version_dict(retired),
        "restored": None if restored is None else operations.version_dict(restored),
    }


class PauseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500)] = (
        "paused by an operator"
    )


@router.post("/specialists/{name}/pause")
async def pause(
    name: SpecialistPath, request: Request, body: PauseRequest | None = None
) -> dict[str, Any]:
    """What ``understudy specialists pause NAME`` does: it answers nothing until resumed."""
    reason = (body or PauseRequest()).reason
    try:
        await operations.pause(request.app.state, name, reason=reason, actor="api")
    except UnderstudyError as exc:
        raise _refused(exc) from exc
    return {"object": "specialist.pause", "name": name, "paused": True}


@router.post("/specialists/{name}/resume")
async def resume(name: SpecialistPath, request: Request) -> dict[str, Any]:
    """What ``understudy specialists resume NAME`` does."""
    try:
        await operations.resume(request.app.state, name, actor="api")
    except UnderstudyError as exc:
        raise _refused(exc) from exc
    return {"object": "specialist.pause", "name": name, "paused": False}


@router.get("/keys")
async def list_keys(request: Request, include_revoked: bool = False) -> dict[str, Any]:
    """Keys with their ``usage``: requests this UTC minute and tokens this UTC day, against
    ``requests_per_minute`` and ``tokens_per_day`` (``null`` where there is no such limit)."""
    keys: KeyStore = request.app.state.keys
    found = await keys.list(include_revoked=include_revoked)
    usage = await keys.usage(found)
    return {"object": "list", "data": [operations.key_dict(k, usage[k.id]) for k in found]}


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=KEY_NAME_LENGTH)
    ]
    requests_per_minute: int | None = Field(None, ge=1, le=MAX_REQUESTS_PER_MINUTE)
    tokens_per_day: int | None = Field(None, ge=1, le=MAX_TOKENS_PER_DAY)
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
async def revoke_key(key_id: KeyIdPath, request: Request) -> dict[str, Any]:
    keys: KeyStore = request.app.state.keys
    try:
        return operations.key_dict(await keys.revoke(key_id))
    except KeyNotFound as exc:
        raise ProtocolError(404, "key_not_found", str(exc), param="key_id") from exc


@router.get("/proposals")
async def list_proposals(
    request: Request, status: Literal["open", "accepted", "dismissed"] | None = None
) -> dict[str, Any]:
    found = await request.app.state.registry.list_proposals(status=status)
    return {"object": "list", "data": [operations.proposal_dict(p) for p in found]}


@router.post("/proposals/{proposal_id}/accept")
async def accept_proposal(proposal_id: ProposalIdPath, request: Request) -> dict[str, Any]:
    try:
        definition = await operations.accept_proposal(request.app.state, proposal_id)
    except UnderstudyError as exc:
        raise _refused(exc) from exc
    return {"object": "specialist.definition", "name": definition.name}


@router.post("/proposals/{proposal_id}/dismiss")
async def dismiss_proposal(proposal_id: ProposalIdPath, request: Request) -> dict[str, Any]:
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
    if isinstance(exc, NotInRegistry | UnknownSpecialistError):
        return ProtocolError(404, "not_found", str(exc))
    if isinstance(exc, PauseConflict):
        return ProtocolError(409, "pause_conflict", str(exc))
    code = "promotion_refused" if isinstance(exc, RegistryError) else "refused"
    return ProtocolError(409, code, str(exc))
