"""The pieces every table is built from: the declarative base, UTC timestamps, JSON columns
and the id lengths tables share (run and key ids appear in many of them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from sqlalchemy import (
    JSON,
    DateTime,
    Table,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

RUN_ID_LENGTH = 64
"""Longest run id; uuid4 hex ids use 32."""
MODE_LENGTH = 32
"""Longest mode name (``llm``, ``slm``, ``router``, ``cascade``)."""
FAILURE_KIND_LENGTH = 32
"""Longest failure kind name (``specialist_unavailable``, …)."""
FINISH_REASON_LENGTH = 16
"""Longest finish reason (``stop``, ``length``)."""
CALL_ID_LENGTH = 64
"""Longest id of a tool call handed over to the caller (``call_`` and a uuid4 hex)."""
KEY_ID_LENGTH = 32
"""uuid4 hex ids."""

WORKER_ID_LENGTH = 64
"""``host:pid:`` plus 8 hex digits, cut to fit."""
STATUS_LENGTH = 16
"""Longest status, stage or trigger name of a job, item or version."""

JSONColumn = JSON().with_variant(JSONB(), "postgresql")
"""JSON everywhere, JSONB on PostgreSQL so transcripts can be queried and indexed there."""


class UTCDateTime(TypeDecorator[datetime]):
    """``TIMESTAMP WITH TIME ZONE`` that always hands back aware UTC datetimes.

    SQLite has no time zone type: SQLAlchemy stores the wall-clock text and returns naive
    datetimes. Converting to UTC on the way in and tagging UTC on the way out makes both
    backends return the same instant, and keeps SQLite's text ordering chronological.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store only accepts aware datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Metadata shared by the store's tables and its Alembic environment."""


def table_of(row: type[Base]) -> Table:
    """The Core table behind an ORM class, for Core statements (``__table__`` is typed as a
    mere ``FromClause``, which ``insert``/``update``/``delete`` do not take)."""
    return cast(Table, row.__table__)


def one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"
