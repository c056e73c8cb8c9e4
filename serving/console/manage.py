"""The console's steering pages: the loop (proposals, jobs), batches (cancel, download) and
keys (create, revoke); specialists are :mod:`serving.console.specialists`. Each action is
:mod:`serving.operations` or the store call its ``/v1`` endpoint makes; a refusal is shown on
the page, in the CLI's words.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from distill.jobs import DistillJobStore
from distill.registry import RegistryStore
from serving import operations
from serving.api.files import file_content
from serving.batch.store import BatchNotFound, BatchStore
from serving.console.auth import FormDep, SessionDep
from serving.console.render import page
from serving.eta import batch_eta
from serving.keys import KeyNotFound, KeyStore
from specialists.errors import UnderstudyError

router = APIRouter(prefix="/console", include_in_schema=False)


def _done(path: str) -> Response:
    return RedirectResponse(path, status_code=303)


async def _job_rows(request: Request) -> dict[str, Any]:
    """The newest jobs, each with its training's ETA while it runs."""
    jobs: DistillJobStore = request.app.state.distill_jobs
    found = await jobs.list(limit=20)
    rows = [(job, operations.job_eta(job)) for job in found]
    return {"job_rows": rows, "now": datetime.now(UTC)}


async def _loop(request: Request, **context: Any) -> Response:
    registry: RegistryStore = request.app.state.registry
    status = 409 if context.get("error") else 200
    return page(
        request,
        "loop.html",
        proposals=await registry.list_proposals(),
        status_code=status,
        **await _job_rows(request),
        **context,
    )


@router.get("/loop")
async def loop(request: Request, _session: SessionDep) -> Response:
    return await _loop(request)


@router.get("/loop/jobs")
async def jobs_panel(request: Request, _session: SessionDep) -> Response:
    """The jobs table alone: what the loop page polls for training progress."""
    return page(request, "_jobs_panel.html", **await _job_rows(request))


@router.post("/proposals/{proposal_id}/{action}")
async def decide(request: Request, proposal_id: int, action: str, _session: FormDep) -> Response:
    registry: RegistryStore = request.app.state.registry
    try:
        if action == "accept":
            await operations.accept_proposal(request.app.state, proposal_id)
        elif action == "dismiss":
            await registry.dismiss_proposal(proposal_id)
        else:
            return page(request, "missing.html", what=f"action {action}", status_code=404)
    except UnderstudyError as exc:
        return await _loop(request, error=str(exc))
    return _done("/console/loop")


async def _batch_rows(request: Request) -> dict[str, Any]:
    """The newest batches, each with its progress and, while in progress, its ETA."""
    batches: BatchStore = request.app.state.batches
    jobs = await batches.list_jobs(limit=50)
    progress = await batches.progress_many([job.id for job in jobs])
    now = datetime.now(UTC)
    rows = [(job, progress[job.id], batch_eta(job, progress[job.id], now)) for job in jobs]
    return {"rows": rows, "now": now}


@router.get("/batches")
async def batches_page(request: Request, _session: SessionDep) -> Response:
    return page(request, "batches.html", **await _batch_rows(request))


@router.get("/batches/panel")
async def batches_panel(request: Request, _session: SessionDep) -> Response:
    """The batch table alone: what the page polls for progress."""
    return page(request, "_batches_panel.html", **await _batch_rows(request))


@router.post("/batches/{batch_id}/cancel")
async def cancel_batch(request: Request, batch_id: str, _session: FormDep) -> Response:
    """What ``POST /v1/batches/{id}/cancel`` does, through the same store call."""
    batches: BatchStore = request.app.state.batches
    try:
        await batches.cancel(batch_id)
    except BatchNotFound:
        return page(request, "missing.html", what=f"batch {batch_id}", status_code=404)
    return _done("/console/batches")


@router.get("/files/{file_id}/content")
async def download(request: Request, file_id: str, session: SessionDep) -> Response:
    """``GET /v1/files/{id}/content`` for the session's admin key."""
    keys: KeyStore = request.app.state.keys
    return await file_content(file_id, request, await keys.find(session.key_id))


async def _keys(request: Request, **context: Any) -> Response:
    keys: KeyStore = request.app.state.keys
    status = 409 if context.get("error") else 200
    found = await keys.list(include_revoked=True)
    return page(
        request,
        "keys.html",
        keys=found,
        usage=await keys.usage(found),
        status_code=status,
        **context,
    )


@router.get("/keys")
async def keys_page(request: Request, _session: SessionDep) -> Response:
    return await _keys(request)


@router.post("/keys")
async def create_key(
    request: Request,
    _session: FormDep,
    name: Annotated[str, Form()],
    requests_per_minute: Annotated[str, Form()] = "",
    tokens_per_day: Annotated[str, Form()] = "",
    admin: Annotated[bool, Form()] = False,
) -> Response:
    """The new key's secret is on this response only; the page is never cached."""
    keys: KeyStore = request.app.state.keys
    try:
        key, plaintext = await keys.create(
            name,
            requests_per_minute=int(requests_per_minute) if requests_per_minute else None,
            tokens_per_day=int(tokens_per_day) if tokens_per_day else None,
            admin=admin,
        )
    except ValueError as exc:
        return await _keys(request, error=str(exc))
    return await _keys(request, created=key, secret=plaintext)


@router.post("/keys/{key_id}/revoke")
async def revoke_key(request: Request, key_id: str, _session: FormDep) -> Response:
    keys: KeyStore = request.app.state.keys
    try:
        await keys.revoke(key_id)
    except KeyNotFound as exc:
        return await _keys(request, error=str(exc))
    return _done("/console/keys")
