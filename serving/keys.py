"""API keys and their per-key limits, enforced the same way by every worker process.

The HTTP API may run as several uvicorn worker processes (``--workers N``) sharing one database,
so the usage counters live in the database, not in process memory: each admission is one atomic
``INSERT … ON CONFLICT DO UPDATE`` on a counter row, which serialises concurrent requests from all
workers on SQLite (≥ 3.35, for ``RETURNING``) and PostgreSQL alike.

Keys are ``us-`` plus 32 random bytes (URL-safe base64). Only their SHA-256 is stored: with that
much entropy a slow password hash would protect nothing more, and a fast one lets every request
be authenticated with one lookup on a unique index. The plaintext is returned once, by
:meth:`KeyStore.create`, and never again.

Limits:

* **requests per minute** — a fixed window per UTC minute. A request is admitted, and counted,
  only while the window's count is below the limit; a denied request counts for nothing, so a
  client hammering a full window does not push its next window back.
* **tokens per day** — a soft cap per UTC day. Tokens are recorded after a request
  (:meth:`KeyStore.record_tokens`), because nobody knows a completion's size before it is made;
  a request is admitted while the day's recorded tokens are below the limit. The request that
  crosses the limit completes; every later one that day is denied until UTC midnight.
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import math
import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from database.engine import Database, Store, wrap_errors
from database.tables import (
    KEY_NAME_LENGTH,
    KEY_PREFIX_LENGTH,
    MAX_REQUESTS_PER_MINUTE,
    MAX_TOKENS_PER_DAY,
    ApiKeyRow,
    ApiKeyUsageRow,
    table_of,
)
from serving.protocol import OnDegraded
from specialists.errors import UnderstudyError

KEY_MARKER = "us-"
"""What every Understudy key starts with, so a leaked one is recognisable (and greppable)."""
KEY_RANDOM_BYTES = 32
MAX_KEY_CHARS = 256
"""Longer bearer tokens cannot be ours; they are rejected without hashing them."""
MIN_PREFIX_MATCH = len(KEY_MARKER) + 3
"""Shortest prefix :meth:`KeyStore.revoke` accepts, so ``us-`` alone never revokes a key."""
MINUTE = "minute"
DAY = "day"

_USAGE = table_of(ApiKeyUsageRow)
_WINDOW = (_USAGE.c.key_id, _USAGE.c.kind, _USAGE.c.window_start)


class KeyNotFound(UnderstudyError):
    """No key, or more than one, matches an id or prefix.

    Args:
        query: The id or prefix that was looked up.
        matches: The prefixes of the keys it matched, when it matched several.
        min_prefix: The shortest prefix a lookup accepts (said in the message).
    """

    def __init__(self, query: str, *, matches: Sequence[str] = (), min_prefix: int = 6) -> None:
        self.query = query
        self.matches = list(matches)
        if self.matches:
            message = (
                f"{query!r} matches {len(self.matches)} keys ({', '.join(self.matches)}); "
                "give more of the prefix, or the key id"
            )
        elif len(query) < min_prefix:
            message = (
                f"no key with id {query!r}; a prefix must have at least {min_prefix} "
                "characters (see `understudy keys list`)"
            )
        else:
            message = f"no key with id or prefix {query!r} (see `understudy keys list --all`)"
        super().__init__(message)


@dataclasses.dataclass(frozen=True)
class ApiKey:
    """A key as callers see it: never the plaintext, never the hash."""

    id: str
    name: str
    prefix: str
    """The key's first characters, enough for a person to tell keys apart."""
    created_at: datetime
    revoked_at: datetime | None
    requests_per_minute: int | None
    """None: no limit."""
    tokens_per_day: int | None
    """None: no limit."""
    admin: bool = False
    """Sees every key's files and batches; other keys see only their own."""
    on_degraded: OnDegraded | None = None
    """What this key's callers get when a fallback answered; None: the server's setting. A
    request's own ``understudy.on_degraded`` overrides it."""

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclasses.dataclass(frozen=True)
class Admission:
    """Whether a request may go ahead, and if not, when to try again."""

    allowed: bool
    retry_after_s: int = 0
    """Seconds until the window that denied the request ends; 0 when allowed."""
    reason: str = ""
    """Why it was denied, worded for the API client; empty when allowed."""


ALLOWED = Admission(allowed=True)


@dataclasses.dataclass(frozen=True)
class KeyUsage:
    """A key's counters in the current windows, what its limits are checked against; ``None``
    where the key has no such limit (only limited keys are counted)."""

    requests_this_minute: int | None
    tokens_today: int | None


class KeyStore(Store):
    """API keys and usage counters in SQLite or PostgreSQL, on the process's :class:`Database`.

    Every write waits in the database's write queue with the other stores' writes (SQLite has
    one writer), so a burst of requests never meets SQLite's busy handler.
    """

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        dialect = postgresql if database.dialect == "postgresql" else sqlite
        self._upsert_into = dialect.insert

    async def create(
        self,
        name: str,
        *,
        requests_per_minute: int | None = None,
        tokens_per_day: int | None = None,
        admin: bool = False,
        on_degraded: OnDegraded | None = None,
    ) -> tuple[ApiKey, str]:
        """Make a key; returns it with its plaintext, which is not stored and cannot be recovered.

        Raises:
            ValueError: The name is empty or too long, or a limit is not a positive integer.
            StoreError: The database failed.
        """
        name = name.strip()
        if not name or len(name) > KEY_NAME_LENGTH:
            raise ValueError(f"key name must be 1 to {KEY_NAME_LENGTH} characters, got {name!r}")
        _check_limit("requests_per_minute", requests_per_minute, MAX_REQUESTS_PER_MINUTE)
        _check_limit("tokens_per_day", tokens_per_day, MAX_TOKENS_PER_DAY)
        plaintext = KEY_MARKER + secrets.token_urlsafe(KEY_RANDOM_BYTES)
        key = ApiKey(
            id=uuid.uuid4().hex,
            name=name,
            prefix=plaintext[:KEY_PREFIX_LENGTH],
            created_at=datetime.now(UTC),
            revoked_at=None,
            requests_per_minute=requests_per_minute,
            tokens_per_day=tokens_per_day,
            admin=admin,
            on_degraded=on_degraded,
        )
        values = {**dataclasses.asdict(key), "key_hash": _hash(plaintext)}
        with wrap_errors("create_key", self._url):
            async with self._writing(), self._engine.begin() as connection:
                await connection.execute(insert(ApiKeyRow), values)
        return key, plaintext

    async def list(self, *, include_revoked: bool = False) -> builtins.list[ApiKey]:
        """Keys oldest first; revoked ones only when asked for.

        Raises:
            StoreError: The database failed.
        """
        query = select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
        if not include_revoked:
            query = query.where(ApiKeyRow.revoked_at.is_(None))
        with wrap_errors("list_keys", self._url):
            async with self._engine.connect() as connection:
                rows = (await connection.execute(query)).all()
        return [_api_key(row) for row in rows]

    async def find(self, key_id_or_prefix: str) -> ApiKey:
        """The key with this id, or the one key whose prefix starts with this text.

        Raises:
            KeyNotFound: Nothing matches, or a prefix matches several keys.
            StoreError: The database failed.
        """
        with wrap_errors("find_key", self._url):
            async with self._engine.connect() as connection:
                return _api_key(await _find(connection, key_id_or_prefix.strip()))

    async def revoke(self, key_id_or_prefix: str) -> ApiKey:
        """Revoke the key with this id, or the one key whose prefix starts with this text.

        Revoking is immediate for every worker (each request looks its key up) and cannot be
        undone. Revoking a revoked key changes nothing and returns it as it is.

        Raises:
            KeyNotFound: Nothing matches, or a prefix matches several keys (none is revoked).
            StoreError: The database failed.
        """
        query = key_id_or_prefix.strip()
        with wrap_errors("revoke_key", self._url):
            async with self._engine.connect() as connection:
                row = await _find(connection, query)
            if row.revoked_at is None:
                # A write transaction of its own (no read before the write): on SQLite that waits
                # for the workers' counter writes instead of failing on a lock upgrade.
                async with self._writing(), self._engine.begin() as connection:
                    await connection.execute(
                        update(ApiKeyRow)
                        .where(ApiKeyRow.id == row.id, ApiKeyRow.revoked_at.is_(None))
                        .values(revoked_at=datetime.now(UTC))
                    )
                    row = (
                        await connection.execute(select(ApiKeyRow).where(ApiKeyRow.id == row.id))
                    ).one()
        return _api_key(row)

    async def authenticate(self, plaintext: str) -> ApiKey | None:
        """The key this plaintext is, or None when it is unknown or revoked.

        One lookup of the key's SHA-256 on a unique index. That lookup is not constant-time, and
        need not be: timing can at most reveal how a guess's *digest* compares with stored
        digests, which says nothing about any key's plaintext.

        Raises:
            StoreError: The database failed.
        """
        if not plaintext.startswith(KEY_MARKER) or len(plaintext) > MAX_KEY_CHARS:
            return None
        query = select(ApiKeyRow).where(ApiKeyRow.key_hash == _hash(plaintext))
        with wrap_errors("authenticate", self._url):
            async with self._engine.connect() as connection:
                row = (await connection.execute(query)).one_or_none()
        if row is None or row.revoked_at is not None:
            return None
        return _api_key(row)

    async def usage(
        self, keys: Sequence[ApiKey], *, now: datetime | None = None
    ) -> dict[str, KeyUsage]:
        """Each key's requests this UTC minute and tokens this UTC day, by key id, in one query
        (the console's and ``GET /v1/admin/keys``' usage against limits).

        Raises:
            ValueError: ``now`` is naive.
            StoreError: The database failed.
        """
        now = _utc(now)
        query = select(_USAGE.c.key_id, _USAGE.c.kind, _USAGE.c.count).where(
            _USAGE.c.key_id.in_([key.id for key in keys]),
            or_(
                and_(_USAGE.c.kind == MINUTE, _USAGE.c.window_start == _minute_start(now)),
                and_(_USAGE.c.kind == DAY, _USAGE.c.window_start == _day_start(now)),
            ),
        )
        with wrap_errors("key_usage", self._url):
            async with self._engine.connect() as connection:
                counts = {(key_id, kind): n for key_id, kind, n in await connection.execute(query)}
        return {
            key.id: KeyUsage(
                requests_this_minute=None
                if key.requests_per_minute is None
                else counts.get((key.id, MINUTE), 0),
                tokens_today=None if key.tokens_per_day is None else counts.get((key.id, DAY), 0),
            )
            for key in keys
        }

    async def admit_request(self, key: ApiKey, *, now: datetime | None = None) -> Admission:
        """Decide whether ``key`` may make a request now, counting it if so.

        The day's tokens are checked first and a key over its daily budget is denied without
        touching its minute counter. Then this minute's counter is incremented only if it is
        below the limit, in one statement, so concurrent requests from any number of workers
        are admitted exactly up to the limit. A key without limits costs no database access.

        Args:
            key: The authenticated key; its limits are the ones it had when looked up.
            now: The current time (aware); tests pass it to step across windows.

        Raises:
            ValueError: ``now`` is naive.
            StoreError: The database failed.
        """
        now = _utc(now)
        if key.requests_per_minute is None and key.tokens_per_day is None:
            return ALLOWED
        with wrap_errors("admit_request", self._url):
            if key.tokens_per_day is not None:
                # A read of its own, ended before the write: on SQLite a read transaction that
                # turns into a write can fail at once on another worker's lock instead of waiting.
                async with self._engine.connect() as connection:
                    denied = await _check_tokens(connection, key, now)
                if denied is not None:
                    return denied
            if key.requests_per_minute is None:
                return ALLOWED
            async with self._writing(), self._engine.begin() as connection:
                return await self._take_minute_slot(connection, key, now)

    async def record_tokens(self, key: ApiKey, tokens: int, *, now: datetime | None = None) -> None:
        """Add ``tokens`` to the key's count for today (UTC), for its daily limit.

        Only keys with a daily limit are counted: the counters exist to enforce limits, not to
        bill (the transcript store has every run's tokens).

        Raises:
            ValueError: ``tokens`` is negative or ``now`` is naive.
            StoreError: The database failed.
        """
        if tokens < 0:
            raise ValueError(f"tokens must be ≥ 0, got {tokens}")
        now = _utc(now)
        if key.tokens_per_day is None or tokens == 0:
            return
        day = _day_start(now)
        statement = (
            self._upsert_into(_USAGE)
            .values(key_id=key.id, kind=DAY, window_start=day, count=tokens)
            .on_conflict_do_update(index_elements=_WINDOW, set_={"count": _USAGE.c.count + tokens})
            .returning(_USAGE.c.count)
        )
        with wrap_errors("record_tokens", self._url):
            async with self._writing(), self._engine.begin() as connection:
                count = (await connection.execute(statement)).scalar_one()
                if count == tokens:  # most likely the day's first record
                    await _prune(connection, key.id, DAY, day)

    async def _take_minute_slot(
        self, connection: AsyncConnection, key: ApiKey, now: datetime
    ) -> Admission:
        """Count a request in this minute's window unless the window is full, in one statement."""
        rpm = key.requests_per_minute
        assert rpm is not None
        minute = _minute_start(now)
        statement = (
            self._upsert_into(_USAGE)
            .values(key_id=key.id, kind=MINUTE, window_start=minute, count=1)
            .on_conflict_do_update(
                index_elements=_WINDOW,
                set_={"count": _USAGE.c.count + 1},
                where=_USAGE.c.count < rpm,
            )
            .returning(_USAGE.c.count)
        )
        count = (await connection.execute(statement)).scalar_one_or_none()
        if count == 1:  # a new window: the key's older minute counters are done with
            await _prune(connection, key.id, MINUTE, minute)
        if count is not None and count <= rpm:  # > rpm: a limit set to 0 in the database by hand
            return ALLOWED
        retry = _seconds_until(minute + timedelta(minutes=1), now)
        return Admission(
            allowed=False,
            retry_after_s=retry,
            reason=(
                f"rate limit of {rpm} requests per minute reached for key {key.name!r}; "
                f"retry in {retry} s"
            ),
        )


async def _check_tokens(
    connection: AsyncConnection, key: ApiKey, now: datetime
) -> Admission | None:
    """A denial if the key has used its tokens for today, else None."""
    assert key.tokens_per_day is not None
    day = _day_start(now)
    used = await _count(connection, key.id, DAY, day) or 0
    if used < key.tokens_per_day:
        return None
    retry = _seconds_until(day + timedelta(days=1), now)
    return Admission(
        allowed=False,
        retry_after_s=retry,
        reason=(
            f"daily token limit of {key.tokens_per_day} reached for key {key.name!r} "
            f"({used} used today); it resets at 00:00 UTC, in {retry} s"
        ),
    )


async def _find(connection: AsyncConnection, query: str) -> Any:
    """The row whose id is ``query``, else the one row whose prefix starts with it."""
    if not query:
        raise KeyNotFound(query, min_prefix=MIN_PREFIX_MATCH)
    row = (await connection.execute(select(ApiKeyRow).where(ApiKeyRow.id == query))).one_or_none()
    if row is not None:
        return row
    if len(query) < MIN_PREFIX_MATCH:
        raise KeyNotFound(query, min_prefix=MIN_PREFIX_MATCH)
    # The prefix column holds KEY_PREFIX_LENGTH characters; a longer query (a whole key pasted)
    # is compared on those.
    rows = (
        await connection.execute(
            select(ApiKeyRow)
            .where(ApiKeyRow.prefix.startswith(query[:KEY_PREFIX_LENGTH], autoescape=True))
            .order_by(ApiKeyRow.created_at)
        )
    ).all()
    if len(rows) != 1:
        raise KeyNotFound(query, matches=[row.prefix for row in rows], min_prefix=MIN_PREFIX_MATCH)
    return rows[0]


async def _count(
    connection: AsyncConnection, key_id: str, kind: str, start: datetime
) -> int | None:
    return await connection.scalar(
        select(_USAGE.c.count).where(
            _USAGE.c.key_id == key_id, _USAGE.c.kind == kind, _USAGE.c.window_start == start
        )
    )


async def _prune(connection: AsyncConnection, key_id: str, kind: str, current: datetime) -> None:
    """Delete the key's counters of earlier windows, so the table holds no more than it needs."""
    await connection.execute(
        delete(ApiKeyUsageRow).where(
            ApiKeyUsageRow.key_id == key_id,
            ApiKeyUsageRow.kind == kind,
            ApiKeyUsageRow.window_start < current,
        )
    )


def _api_key(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        requests_per_minute=row.requests_per_minute,
        tokens_per_day=row.tokens_per_day,
        admin=row.admin,
        on_degraded=OnDegraded(row.on_degraded) if row.on_degraded else None,
    )


def _hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def _check_limit(name: str, value: int | None, maximum: int) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum
    ):
        raise ValueError(
            f"{name} must be an integer from 1 to {maximum:,} or None (no limit), got {value!r}"
        )


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError(f"naive datetime {now!r}: pass an aware one (datetime.now(UTC))")
    return now.astimezone(UTC)


def _minute_start(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0)


def _day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _seconds_until(moment: datetime, now: datetime) -> int:
    """Whole seconds, rounded up and at least 1, as ``Retry-After`` wants them."""
    return max(1, math.ceil((moment - now).total_seconds()))
