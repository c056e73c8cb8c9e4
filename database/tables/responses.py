"""Responses of ``/v1/responses`` kept for ``previous_response_id``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Index,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from database.tables.base import (
    KEY_ID_LENGTH,
    RUN_ID_LENGTH,
    Base,
    JSONColumn,
    UTCDateTime,
)

RESPONSE_ID_LENGTH = 70  # "resp_" and a run id


class StoredResponseRow(Base):
    """A ``/v1/responses`` response kept for ``previous_response_id`` (migration 0012): the
    response object, and the chat messages to its output (without instructions) that a next
    one continues. Its run is no foreign key: its record may still wait in the spool."""

    __tablename__ = "stored_responses"
    __table_args__ = (Index("ix_stored_responses_created_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(RESPONSE_ID_LENGTH), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(RUN_ID_LENGTH))
    previous_response_id: Mapped[str | None] = mapped_column(String(RESPONSE_ID_LENGTH))
    owner_key_id: Mapped[str | None] = mapped_column(String(KEY_ID_LENGTH))  # None: auth off
    conversation: Mapped[list[Any]] = mapped_column(JSONColumn)
    body: Mapped[dict[str, Any]] = mapped_column(JSONColumn)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
