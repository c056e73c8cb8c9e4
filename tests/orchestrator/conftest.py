"""Fixtures for orchestrator tests: a transcript store on each backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from orchestrator.transcripts import TranscriptStore
from tests.helpers.stores import open_store


@pytest_asyncio.fixture
async def transcript_store(database_url: str) -> AsyncIterator[TranscriptStore]:
    """A migrated, empty :class:`TranscriptStore` on each backend, closed after the test."""
    store = await open_store(TranscriptStore, database_url)
    try:
        yield store
    finally:
        await store.database.close()
