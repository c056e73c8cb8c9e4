"""API keys and their usage counters, and the write probes readiness uses."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from database.tables.base import (
    KEY_ID_LENGTH,
    Base,
    UTCDateTime,
)

# API keys (migration 0002). Only a key's SHA-256 is stored: the plaintext is shown once, at
# creation. Usage counters live in the database, not in process memory, so that every HTTP worker
# process enforces the same limits.
KEY_NAME_LENGTH = 100
"""Longest key name; a label for people, not a description."""
KEY_PREFIX_LENGTH = 12
"""Characters of the plaintext key kept for display (``us-`` and nine random characters)."""
KEY_HASH_LENGTH = 64
"""Hex SHA-256."""
MAX_REQUESTS_PER_MINUTE = 2**31 - 1
"""Largest per-minute limit (an ``Integer`` column)."""
MAX_TOKENS_PER_DAY = 2**63 - 1
"""Largest daily token limit (a ``BigInteger`` column)."""
USAGE_KIND_LENGTH = 8
"""Longest usage window kind (``minute``, ``day``)."""
ON_DEGRADED_LENGTH = 16
"""Longest degradation policy (``degrade``, ``error``)."""
WRITE_PROBE_NAME_LENGTH = 64
"""Longest write-probe name (who probed: ``readyz``, ``doctor``)."""


class ApiKeyRow(Base):
    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_key_hash", "key_hash", unique=True),)

    id: Mapped[str] = mapped_column(String(KEY_ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(KEY_NAME_LENGTH))
    prefix: Mapped[str] = mapped_column(String(KEY_PREFIX_LENGTH))
    key_hash: Mapped[str] = mapped_column(String(KEY_HASH_LENGTH))
    """Hex SHA-256 of the whole key; keys are 32 random bytes, so a slow hash would add nothing."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    """None: no limit."""
    tokens_per_day: Mapped[int | None] = mapped_column(BigInteger)
    """None: no limit. Days are UTC days."""
    admin: Mapped[bool] = mapped_column(server_default=false())
    """Sees every key's files and batches (migration 0006); other keys see only their own."""
    on_degraded: Mapped[str | None] = mapped_column(String(ON_DEGRADED_LENGTH))
    """``degrade`` or ``error`` for this key's degraded answers (migration 0007); NULL: the
    server's setting. A request's own ``on_degraded`` overrides either."""


class ApiKeyUsageRow(Base):
    __tablename__ = "api_key_usage"
    __table_args__ = (CheckConstraint("kind IN ('minute', 'day')", name="ck_api_key_usage_kind"),)

    key_id: Mapped[str] = mapped_column(
        String(KEY_ID_LENGTH),
        ForeignKey("api_keys.id", ondelete="CASCADE", name="fk_api_key_usage_key_id_api_keys"),
        primary_key=True,
    )
    kind: Mapped[str] = mapped_column(String(USAGE_KIND_LENGTH), primary_key=True)
    """``minute``: requests admitted in the window; ``day``: tokens used in the UTC day."""
    window_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class WriteProbeRow(Base):
    """One row per prober, rewritten by every readiness probe: proof the database takes writes
    (migration 0007)."""

    __tablename__ = "write_probes"

    name: Mapped[str] = mapped_column(String(WRITE_PROBE_NAME_LENGTH), primary_key=True)
    probed_at: Mapped[datetime] = mapped_column(UTCDateTime())
