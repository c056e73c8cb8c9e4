"""Batch workers' heartbeats: who lives, and the leases of the items they hold.

A worker records itself and renews the leases of its running items every third of a lease
(:meth:`WorkerStore.heartbeat`); one that stops cleanly hands its items back at once
(:meth:`WorkerStore.release`); one that dies simply stops renewing, and its items are claimed
again once their leases expire. The count of live workers is how lead limits are shared.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from database.engine import Database, Store, wrap_errors
from database.tables import WORKER_ID_LENGTH, BatchItemRow, WorkerRow, table_of

STALE_WORKER_LEASES = 10
"""A worker row silent for this many leases is deleted (its process is long gone)."""

_ITEMS = table_of(BatchItemRow)


@dataclass(frozen=True)
class WorkerInfo:
    """A worker process, as its heartbeat row records it."""

    id: str
    host: str
    pid: int
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def this_process(cls) -> WorkerInfo:
        host = socket.gethostname()
        suffix = f":{os.getpid()}:{uuid.uuid4().hex[:8]}"
        return cls(id=host[: WORKER_ID_LENGTH - len(suffix)] + suffix, host=host, pid=os.getpid())


class WorkerStore(Store):
    """Worker heartbeats and the leases they renew, on the process's :class:`Database`."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self._insert = postgresql.insert if database.dialect == "postgresql" else sqlite.insert

    async def heartbeat(self, worker: WorkerInfo, *, lease_s: float) -> int:
        """Record that ``worker`` lives and renew its leases; returns how many workers live.

        Raises:
            StoreError: The database failed.
        """
        now = datetime.now(UTC)
        row = {
            "id": worker.id,
            "host": worker.host,
            "pid": worker.pid,
            "started_at": worker.started_at,
            "heartbeat_at": now,
        }
        upsert = (
            self._insert(table_of(WorkerRow))
            .values(row)
            .on_conflict_do_update(index_elements=["id"], set_={"heartbeat_at": now})
        )
        live = (
            select(func.count())
            .select_from(WorkerRow)
            .where(WorkerRow.heartbeat_at >= now - timedelta(seconds=lease_s))
        )
        with wrap_errors("worker_heartbeat", self._url):
            async with self._writing(), self._engine.begin() as connection:
                await connection.execute(upsert)
                await connection.execute(
                    update(_ITEMS)
                    .where(_ITEMS.c.worker_id == worker.id, _ITEMS.c.status == "running")
                    .values(lease_expires_at=now + timedelta(seconds=lease_s))
                )
                await connection.execute(
                    delete(WorkerRow).where(
                        WorkerRow.heartbeat_at
                        < now - timedelta(seconds=lease_s * STALE_WORKER_LEASES)
                    )
                )
                return int(await connection.scalar(live) or 1)

    async def release(self, worker_id: str) -> None:
        """A worker stops cleanly: its running items go back to pending at once."""
        with wrap_errors("release_worker", self._url):
            async with self._writing(), self._engine.begin() as connection:
                await connection.execute(
                    update(_ITEMS)
                    .where(_ITEMS.c.worker_id == worker_id, _ITEMS.c.status == "running")
                    .values(status="pending", worker_id=None, lease_expires_at=None)
                )
                await connection.execute(delete(WorkerRow).where(WorkerRow.id == worker_id))
