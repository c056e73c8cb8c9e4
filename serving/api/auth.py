"""API-key authentication and per-key limits, as a FastAPI dependency.

The app keeps a :class:`~serving.keys.KeyStore` at ``app.state.keys`` and the
:class:`~serving.settings.Settings` at ``app.state.settings``; routes that need a caller declare
``key: ApiKeyDep``. Keys and counters live in the database, so limits hold however many worker
processes serve the API.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request

from database import StoreError
from serving.keys import ApiKey, KeyStore
from serving.protocol import ProtocolError, database_unavailable
from serving.settings import Settings

logger = logging.getLogger(__name__)

ANONYMOUS_KEY = ApiKey(
    id="anonymous",
    name="anonymous",
    prefix="",
    created_at=datetime(1970, 1, 1, tzinfo=UTC),
    revoked_at=None,
    requests_per_minute=None,
    tokens_per_day=None,
    admin=True,
)
"""The caller when authentication is off (``UNDERSTUDY_API_AUTH=false``): no limits, not stored,
sees everything."""

_CHALLENGE = {"WWW-Authenticate": "Bearer"}
"""RFC 6750: a 401 names the scheme the client should use."""


async def require_api_key(request: Request) -> ApiKey:
    """The caller's key, after checking it and admitting the request against its limits.

    Reads ``Authorization: Bearer <key>`` only; keys in query strings end up in access logs.
    The key is also left on ``request.state.api_key`` for code that runs after the route
    (recording the tokens a request used, see :func:`record_token_usage`).

    Raises:
        ProtocolError: 401 ``invalid_api_key`` when the key is missing, unknown or revoked;
            429 ``rate_limit_exceeded`` with ``Retry-After`` when a limit is reached;
            503 ``database_unavailable`` when the key database cannot be reached.
    """
    settings: Settings = request.app.state.settings
    if not settings.api.auth:
        request.state.api_key = ANONYMOUS_KEY
        return ANONYMOUS_KEY
    plaintext = _bearer_token(request.headers.get("authorization"))
    if plaintext is None:
        raise ProtocolError(
            401,
            "invalid_api_key",
            "You didn't provide an API key. Send it in an 'Authorization: Bearer <key>' header; "
            "create one with `understudy keys create NAME`.",
            headers=_CHALLENGE,
        )
    keys: KeyStore = request.app.state.keys
    try:
        key = await keys.authenticate(plaintext)
        if key is None:
            raise ProtocolError(
                401,
                "invalid_api_key",
                "Incorrect API key provided, or the key was revoked. "
                "`understudy keys list` shows the active keys.",
                headers=_CHALLENGE,
            )
        admission = await keys.admit_request(key)
    except StoreError as exc:
        logger.error("API key check failed: %s", exc)
        raise database_unavailable() from exc
    if not admission.allowed:
        raise ProtocolError(
            429,
            "rate_limit_exceeded",
            admission.reason,
            headers={"Retry-After": str(admission.retry_after_s)},
        )
    request.state.api_key = key
    request.state.api_key_prefix = key.prefix  # for the access log; never the key itself
    return key


ApiKeyDep = Annotated[ApiKey, Depends(require_api_key)]
"""Declare ``key: ApiKeyDep`` on a route to require a valid key within its limits."""


def owner_of(key: ApiKey) -> str | None:
    """Who owns the files and batches ``key`` makes: the key, or nobody when authentication is
    off (the anonymous caller is not a stored key)."""
    return None if key is ANONYMOUS_KEY else key.id


def visible_to(key: ApiKey) -> str | None:
    """The owner whose files and batches ``key`` sees (the stores' ``owned_by``): its own, or
    everyone's (None) for an admin key and with authentication off."""
    return None if key.admin else key.id


async def record_token_usage(request: Request, tokens: int) -> None:
    """Charge ``tokens`` to the caller's daily budget; nothing when authentication is off.

    Call it once a request's token count is known. A database failure is logged, not raised:
    the client already has its answer, and failing the request now would not give tokens back.
    """
    key: ApiKey | None = getattr(request.state, "api_key", None)
    if key is None or key is ANONYMOUS_KEY:
        return
    keys: KeyStore = request.app.state.keys
    try:
        await keys.record_tokens(key, tokens)
    except StoreError as exc:
        logger.error("could not record %d tokens for key %s: %s", tokens, key.prefix, exc)


def _bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token
