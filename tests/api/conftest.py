"""Fixtures for API tests: the per-backend ``database_url`` of the orchestrator tests."""

from tests.orchestrator.conftest import database_url

__all__ = ["database_url"]
