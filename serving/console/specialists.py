"""The console's specialists page: every known specialist with its versions (status, canary
share, gate, threshold, live audited precision), its return on investment and its latest
registry events; and the actions ``understudy specialists promote|rollback|pause|resume`` take,
through :mod:`serving.operations`. A refusal is shown on the page, in the CLI's words.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import State

from distill.catalog import known_catalog, version_tag
from distill.registry import RegistryEvent, RegistryStore, SpecialistVersion
from distill.roi import SpecialistLedger
from distill.roi_store import RoiStore
from orchestrator.audits import AuditStore, LiveStats, ServedVersion, version_figures
from serving import operations
from serving.console.auth import FormDep, SessionDep
from serving.console.render import page
from serving.runtime import audit_policy, roi_config
from specialists.errors import UnderstudyError

router = APIRouter(prefix="/console", include_in_schema=False)

EVENTS_SHOWN = 5
"""Registry events shown per specialist; ``understudy specialists events NAME`` has them all."""


@dataclass(frozen=True, slots=True)
class Board:
    """What the page shows of one specialist."""

    name: str
    paused: bool
    versions: list[SpecialistVersion]
    live: dict[int, LiveStats]
    """Live figures by version id, over the audit window (as ``specialists list`` reads them)."""
    ledger: SpecialistLedger
    events: list[RegistryEvent]

    @property
    def labels(self) -> dict[int, str]:
        """Version labels by id, for the events (which name a version by id)."""
        return {v.id: v.label for v in self.versions}


async def boards(state: State) -> list[Board]:
    """Every specialist the settings or the registry know, by name."""
    registry: RegistryStore = state.registry
    snapshot = await registry.snapshot()
    versions = await registry.list_versions()
    names = sorted(
        {
            *known_catalog(state.settings.catalog(), snapshot).names,
            *(v.specialist for v in versions),
        }
    )
    served = {v.id: ServedVersion(v.specialist, version_tag(v), v.promoted_at) for v in versions}
    policy = audit_policy(state.settings)
    figures = await version_figures(AuditStore(state.database), served.values(), policy)
    ledgers = await RoiStore(state.database).ledgers(names, roi_config(state.settings))
    return [
        Board(
            name=name,
            paused=name in snapshot.paused,
            versions=[v for v in versions if v.specialist == name],
            live={v.id: figures[served[v.id]] for v in versions if v.specialist == name},
            ledger=ledger,
            events=await registry.events(name, EVENTS_SHOWN),
        )
        for name, ledger in zip(names, ledgers, strict=True)
    ]


async def _page(request: Request, **context: Any) -> Response:
    status = 409 if context.get("error") else 200
    state = request.app.state
    window = (state.settings.audit.window, state.settings.audit.window_days)
    return page(
        request,
        "specialists.html",
        boards=await boards(state),
        window=window,
        default_share=state.settings.canary.share,
        status_code=status,
        **context,
    )


def _done() -> Response:
    return RedirectResponse("/console/specialists", status_code=303)


@router.get("/specialists")
async def specialists(request: Request, _session: SessionDep) -> Response:
    return await _page(request)


@router.post("/specialists/{name}/promote")
async def promote(
    request: Request,
    name: str,
    _session: FormDep,
    version: Annotated[int, Form(ge=1)],
    canary: Annotated[float | None, Form(gt=0.0, lt=1.0)] = None,
    now: Annotated[bool, Form()] = False,
) -> Response:
    """``specialists promote NAME --version N [--canary SHARE | --now]``; with neither, a canary
    on the default share."""
    try:
        await operations.promote(
            request.app.state, name, version, canary=None if now else canary, now=now
        )
    except UnderstudyError as exc:
        return await _page(request, error=str(exc))
    return _done()


@router.post("/specialists/{name}/{action}")
async def steer(request: Request, name: str, action: str, _session: FormDep) -> Response:
    """Roll back, pause or resume ``name``, as the CLI's command of that name does."""
    actions: dict[str, Callable[[State, str], Awaitable[object]]] = {
        "rollback": operations.rollback,
        "pause": operations.pause,
        "resume": operations.resume,
    }
    if action not in actions:
        return page(request, "missing.html", what=f"action {action}", status_code=404)
    try:
        await actions[action](request.app.state, name)
    except UnderstudyError as exc:
        return await _page(request, error=str(exc))
    return _done()
