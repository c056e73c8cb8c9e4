"""Signing in to the console: an admin API key for a session cookie, CSRF on every form.

The cookie is HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it)
and Secure when the console is reached over https. Every POST also carries the session's
synchronizer token (a hidden ``csrf`` field) — SameSite is a second lock, not the only one —
and the login form, which has no session yet, a double-submit token from its own cookie.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from serving.console.sessions import SESSION_TTL, ConsoleSession, SessionStore
from specialists.errors import UnderstudyError

SESSION_COOKIE = "understudy_console"
LOGIN_COOKIE = "understudy_console_login"
"""The login form's double-submit CSRF token (no session exists yet to hold one)."""
COOKIE_PATH = "/console"


class NotSignedIn(UnderstudyError):
    """No live console session: the page answers with a redirect to the login form."""


class BadCsrfToken(UnderstudyError):
    """A console form came without its session's CSRF token: refused, 403."""


async def console_session(request: Request) -> ConsoleSession:
    """The signed-in operator, or :class:`NotSignedIn`."""
    token = request.cookies.get(SESSION_COOKIE)
    sessions: SessionStore = request.app.state.console_sessions
    session = await sessions.find(token) if token else None
    if session is None:
        raise NotSignedIn("sign in with an admin API key")
    request.state.console_session = session
    return session


async def console_form(
    request: Request,
    session: Annotated[ConsoleSession, Depends(console_session)],
    csrf: Annotated[str, Form()] = "",
) -> ConsoleSession:
    """The operator behind a POST whose ``csrf`` field is the session's token."""
    if not secrets.compare_digest(csrf, session.csrf_token):
        raise BadCsrfToken("the form's CSRF token does not match this session; reload the page")
    return session


SessionDep = Annotated[ConsoleSession, Depends(console_session)]
FormDep = Annotated[ConsoleSession, Depends(console_form)]


def login_token(request: Request) -> str:
    """The login form's CSRF token: the one its cookie holds, or a new one."""
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)


def login_token_matches(request: Request, submitted: str) -> bool:
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    return bool(cookie) and secrets.compare_digest(cookie, submitted)


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def signed_in(request: Request, token: str) -> Response:
    """The redirect after login, carrying the session cookie."""
    response = RedirectResponse("/console/", status_code=303)
    set_cookie(request, response, SESSION_COOKIE, token, int(SESSION_TTL.total_seconds()))
    response.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH)
    return response


def signed_out() -> Response:
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response
