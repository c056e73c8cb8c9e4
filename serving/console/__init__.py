"""The operator console under ``/console``: server-rendered pages (Jinja2) with a little vanilla
JavaScript (``static/console.js``: confirmations, and polling fragments so the overview and
batch progress update without a reload). Every asset ships in this package; nothing is fetched
from another host. Signing in: :mod:`serving.console.auth`; the actions are
:mod:`serving.operations`, the same as ``/v1/admin``'s.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from serving.console import manage, pages, specialists
from serving.console.auth import BadCsrfToken, NotSignedIn
from serving.console.render import HERE, page


def install(app: FastAPI) -> None:
    """Mount the console's pages, its static files and its two error pages on ``app``."""
    app.include_router(pages.router)
    app.include_router(manage.router)
    app.include_router(specialists.router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")

    async def not_signed_in(_request: Request, _exc: Exception) -> Response:
        return RedirectResponse("/console/login", status_code=303)

    async def bad_csrf(request: Request, exc: Exception) -> Response:
        return page(request, "missing.html", what=None, error=str(exc), status_code=403)

    app.add_exception_handler(NotSignedIn, not_signed_in)
    app.add_exception_handler(BadCsrfToken, bad_csrf)
