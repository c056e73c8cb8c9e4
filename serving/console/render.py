"""Templates and the page shell every console page shares (navigation, session, messages)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from serving.console.charts import polyline
from serving.eta import describe

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["polyline"] = polyline
templates.env.filters["eta"] = describe

NAV = (
    ("overview", "Overview", "/console/"),
    ("runs", "Runs", "/console/runs"),
    ("specialists", "Specialists", "/console/specialists"),
    ("loop", "Loop", "/console/loop"),
    ("batches", "Batches", "/console/batches"),
    ("keys", "Keys", "/console/keys"),
)


def page(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """``template`` rendered with the session (for the CSRF field and logout) and the nav."""
    response = templates.TemplateResponse(
        request,
        template,
        {"session": getattr(request.state, "console_session", None), "nav": NAV, **context},
        status_code=status_code,
    )
    # Pages show live data and, once, a new key's secret: never from a cache.
    response.headers["Cache-Control"] = "no-store"
    return response
