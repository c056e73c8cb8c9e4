"""The operator console's sessions (migration 0017): an admin key exchanged for a cookie."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from database.tables.base import KEY_ID_LENGTH, Base, UTCDateTime

SESSION_HASH_LENGTH = 64
"""Hex SHA-256 of the session token; the token itself is only in the operator's cookie."""
CSRF_TOKEN_LENGTH = 64
"""The session's CSRF token (URL-safe base64 of 32 random bytes is 43 characters)."""


class ConsoleSessionRow(Base):
    """One signed-in operator. Deleted at logout; ignored (and swept) once expired."""

    __tablename__ = "console_sessions"
    __table_args__ = (Index("ix_console_sessions_expires_at", "expires_at"),)

    token_hash: Mapped[str] = mapped_column(String(SESSION_HASH_LENGTH), primary_key=True)
    key_id: Mapped[str] = mapped_column(
        String(KEY_ID_LENGTH),
        ForeignKey("api_keys.id", ondelete="CASCADE", name="fk_console_sessions_key_id_api_keys"),
    )
    """The admin key that signed in: revoking it ends the session at the next request."""
    csrf_token: Mapped[str] = mapped_column(String(CSRF_TOKEN_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
