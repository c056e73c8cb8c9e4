"""Stores on a database of their own, for tests that exercise one store at a time.

A product process opens one :class:`~database.Database` and builds every store on it; a test
that needs a store alone gets one here, and closes it with ``await store.database.close()``.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from database import Database


class _StoreType(Protocol):
    def __init__(self, database: Database) -> None: ...


S = TypeVar("S", bound=_StoreType)


async def open_store(store_type: type[S], url: str, *, migrate: bool = True) -> S:
    """A ``store_type`` on a newly opened (and, unless told not to, migrated) database."""
    return store_type(await Database.open(url, migrate=migrate))
