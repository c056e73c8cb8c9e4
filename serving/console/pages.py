"""The console's reading pages: login, overview, runs and one run's trace (with feedback)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from orchestrator.transcripts import RunNotFound, TranscriptStore
from orchestrator.transcripts.analytics import (
    SEARCH_OFFSET_MAX,
    FeedbackFilter,
    RunAnalytics,
    RunFilter,
    Window,
)
from serving.console.auth import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    FormDep,
    SessionDep,
    login_token,
    login_token_matches,
    set_cookie,
    signed_in,
    signed_out,
)
from serving.console.render import page
from serving.console.sessions import SessionStore
from serving.keys import KeyStore

router = APIRouter(prefix="/console", include_in_schema=False)


def _login_page(request: Request, *, error: str | None = None, status_code: int = 200) -> Response:
    token = login_token(request)
    response = page(request, "login.html", csrf_login=token, error=error, status_code=status_code)
    set_cookie(request, response, LOGIN_COOKIE, token, 3600)
    return response


@router.get("/login")
async def login_form(request: Request) -> Response:
    return _login_page(request)


@router.post("/login")
async def login(
    request: Request,
    api_key: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> Response:
    if not login_token_matches(request, csrf):
        return _login_page(request, error="The form expired; please try again.", status_code=403)
    keys: KeyStore = request.app.state.keys
    key = await keys.authenticate(api_key.strip())
    if key is None:
        return _login_page(request, error="Unknown or revoked API key.", status_code=401)
    if not key.admin:
        return _login_page(
            request,
            error="This key is not an admin key; the console needs one "
            "(`understudy keys create NAME --admin`).",
            status_code=403,
        )
    sessions: SessionStore = request.app.state.console_sessions
    token, _ = await sessions.open(key.id)
    return signed_in(request, token)


@router.post("/logout")
async def logout(request: Request, _session: FormDep) -> Response:
    sessions: SessionStore = request.app.state.console_sessions
    await sessions.close(request.cookies.get(SESSION_COOKIE, ""))
    return signed_out()


@router.get("/")
async def overview(request: Request, _session: SessionDep, window: Window = Window.day) -> Response:
    return page(request, "overview.html", **await _overview(request, window))


@router.get("/overview/panel")
async def overview_panel(
    request: Request, _session: SessionDep, window: Window = Window.day
) -> Response:
    """The overview's figures alone: what the page polls to update without a reload."""
    return page(request, "_overview_panel.html", **await _overview(request, window))


async def _overview(request: Request, window: Window) -> dict[str, Any]:
    analytics: RunAnalytics = request.app.state.analytics
    figures = await analytics.overview(window)
    peak = max((sum(b.counts.values()) for b in figures.buckets), default=0)
    return {"figures": figures, "windows": list(Window), "window": window, "peak": peak}


@router.get("/runs")
async def runs(
    request: Request,
    _session: SessionDep,
    mode: str = "",
    route: str = "",
    specialist: str = "",
    degraded: str = "",
    feedback: str = "",
    since: str = "",
    until: str = "",
    text: str = "",
    offset: Annotated[int, Query(ge=0, le=SEARCH_OFFSET_MAX)] = 0,
) -> Response:
    form = {
        "mode": mode,
        "route": route,
        "specialist": specialist,
        "degraded": degraded,
        "feedback": feedback,
        "since": since,
        "until": until,
        "text": text,
    }
    try:
        where = RunFilter(
            mode=mode or None,
            route=route or None,
            specialist=specialist or None,
            degraded={"yes": True, "no": False}.get(degraded),
            feedback=FeedbackFilter(feedback) if feedback else None,
            since=_moment(since),
            until=_moment(until),
            text=text or None,
            offset=offset,
        )
    except ValueError as exc:
        return page(request, "runs.html", form=form, found=[], error=str(exc), status_code=400)
    analytics: RunAnalytics = request.app.state.analytics
    found = await analytics.search(where)
    return page(request, "runs.html", form=form, found=found, offset=offset, limit=where.limit)


def _moment(text: str) -> datetime | None:
    """A ``datetime-local`` field (read as UTC), or None when empty."""
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.get("/runs/{run_id}")
async def run(request: Request, run_id: str, _session: SessionDep) -> Response:
    return await _trace(request, run_id)


async def _trace(request: Request, run_id: str, **context: Any) -> Response:
    store: TranscriptStore = request.app.state.store
    try:
        record = await store.get_run(run_id)
    except RunNotFound:
        return page(request, "missing.html", what=f"run {run_id}", status_code=404)
    feedback = await store.feedback_for(run_id)
    return page(request, "run.html", run=record, feedback=feedback, **context)


@router.post("/runs/{run_id}/feedback")
async def add_feedback(
    request: Request,
    run_id: str,
    _session: FormDep,
    score: Annotated[float, Form(ge=-1.0, le=1.0)],
    comment: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """What ``POST /v1/feedback`` does, through the same store call."""
    store: TranscriptStore = request.app.state.store
    try:
        await store.add_feedback(run_id, score, comment or None)
    except RunNotFound:
        return page(request, "missing.html", what=f"run {run_id}", status_code=404)
    return RedirectResponse(f"/console/runs/{run_id}#feedback", status_code=303)
