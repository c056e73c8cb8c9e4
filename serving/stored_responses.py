"""Responses kept for ``previous_response_id`` and ``GET``/``DELETE /v1/responses/{id}``.

A response belongs to the API key that created it: every read filters by ``owned_by`` in the
query itself, so another key's response is the same :class:`ResponseNotFound` as a missing one
(as files and batches are, :mod:`serving.batch.store.files`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select

from database.engine import Store, wrap_errors
from database.tables import StoredResponseRow, table_of
from serving.batch.store.files import owned
from specialists.backend import ChatMessage
from specialists.errors import UnderstudyError


class ResponseNotFound(UnderstudyError):
    """No stored response with this id is visible to the caller.

    Args:
        response_id: The id that was looked up.
    """

    def __init__(self, response_id: str) -> None:
        self.response_id = response_id
        super().__init__(f"no response with id {response_id!r}")


@dataclass(frozen=True)
class StoredResponse:
    id: str
    run_id: str
    previous_response_id: str | None
    owner_key_id: str | None
    conversation: list[ChatMessage]
    """What a next response continues from (without the instructions)."""
    body: dict[str, Any]
    """The response object, as the client got it."""
    created_at: datetime


class ResponseStore(Store):
    """Stored responses in SQLite or PostgreSQL."""

    async def add(
        self,
        body: dict[str, Any],
        *,
        run_id: str,
        conversation: list[ChatMessage],
        owner_key_id: str | None,
    ) -> StoredResponse:
        """Keep the response ``body`` (its ``id`` and ``previous_response_id`` are its own).

        Raises: StoreError.
        """
        stored = StoredResponse(
            id=body["id"],
            run_id=run_id,
            previous_response_id=body.get("previous_response_id"),
            owner_key_id=owner_key_id,
            conversation=conversation,
            body=body,
            created_at=datetime.now(UTC),
        )
        with wrap_errors("add_response", self._url):
            async with self._writing(), self._engine.begin() as connection:
                await connection.execute(insert(StoredResponseRow), [asdict(stored)])
        return stored

    async def get(self, response_id: str, *, owned_by: str | None = None) -> StoredResponse:
        """The response with this id, if ``owned_by`` (a key id; None: anyone) owns it.

        Raises: ResponseNotFound, StoreError.
        """
        responses = table_of(StoredResponseRow)
        query = select(responses).where(responses.c.id == response_id, owned(responses, owned_by))
        with wrap_errors("get_response", self._url):
            async with self._engine.connect() as connection:
                row = (await connection.execute(query)).one_or_none()
        if row is None:
            raise ResponseNotFound(response_id)
        return StoredResponse(**row._mapping)

    async def delete(self, response_id: str, *, owned_by: str | None = None) -> None:
        """Forget the response, if ``owned_by`` owns it.

        Raises: ResponseNotFound, StoreError.
        """
        responses = table_of(StoredResponseRow)
        query = delete(responses).where(responses.c.id == response_id, owned(responses, owned_by))
        with wrap_errors("delete_response", self._url):
            async with self._writing(), self._engine.begin() as connection:
                deleted = (await connection.execute(query)).rowcount
        if not deleted:
            raise ResponseNotFound(response_id)
