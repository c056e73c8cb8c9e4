"""Console sessions: an admin API key exchanged for a cookie, kept server-side.

Why a table and not a signed token: logout must end the session for good (a signed token stays
valid until it expires, wherever a copy of the cookie went), and revoking the admin key must
end every session it opened, at once, on every worker — one indexed lookup per page does both,
and needs no signing secret shared between processes. Only the token's SHA-256 is stored, as for
API keys: a database dump does not hold a working cookie.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select

from database.engine import Store, wrap_errors
from database.tables import ApiKeyRow, ConsoleSessionRow

SESSION_TTL = timedelta(hours=12)
"""How long a console session lasts after login; a working day, then the key is asked again."""


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A signed-in operator: the admin key behind the session, and the session's CSRF token."""

    key_id: str
    key_name: str
    csrf_token: str
    expires_at: datetime


class SessionStore(Store):
    """Console sessions on the process's :class:`~database.Database`."""

    async def open(self, key_id: str, *, now: datetime | None = None) -> tuple[str, ConsoleSession]:
        """A new session for the (admin) key ``key_id``: its cookie token, and the session.

        Expired sessions are swept here, so the table holds only live ones and a few more.

        Raises:
            StoreError: The database failed.
        """
        now = now or datetime.now(UTC)
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        expires = now + SESSION_TTL
        with wrap_errors("open_console_session", self._url):
            async with self._writing(), self._engine.begin() as connection:
                await connection.execute(
                    delete(ConsoleSessionRow).where(ConsoleSessionRow.expires_at < now)
                )
                await connection.execute(
                    insert(ConsoleSessionRow),
                    {
                        "token_hash": _hash(token),
                        "key_id": key_id,
                        "csrf_token": csrf,
                        "created_at": now,
                        "expires_at": expires,
                    },
                )
                name = await connection.scalar(select(ApiKeyRow.name).where(ApiKeyRow.id == key_id))
        return token, ConsoleSession(key_id, name or "", csrf, expires)

    async def find(self, token: str, *, now: datetime | None = None) -> ConsoleSession | None:
        """The live session of ``token``: not expired, and its key still an unrevoked admin key.

        Raises:
            StoreError: The database failed.
        """
        now = now or datetime.now(UTC)
        query = (
            select(
                ConsoleSessionRow.key_id,
                ApiKeyRow.name,
                ConsoleSessionRow.csrf_token,
                ConsoleSessionRow.expires_at,
            )
            .join(ApiKeyRow, ApiKeyRow.id == ConsoleSessionRow.key_id)
            .where(
                ConsoleSessionRow.token_hash == _hash(token),
                ConsoleSessionRow.expires_at > now,
                ApiKeyRow.revoked_at.is_(None),
                ApiKeyRow.admin.is_(True),
            )
        )
        with wrap_errors("find_console_session", self._url):
            async with self._engine.connect() as connection:
                row = (await connection.execute(query)).one_or_none()
        return None if row is None else ConsoleSession(*row)

    async def close(self, token: str) -> None:
        """End the session of ``token`` (nothing when there is none).

        Raises:
            StoreError: The database failed.
        """
        with wrap_errors("close_console_session", self._url):
            async with self._writing(), self._engine.begin() as connection:
                await connection.execute(
                    delete(ConsoleSessionRow).where(ConsoleSessionRow.token_hash == _hash(token))
                )


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
