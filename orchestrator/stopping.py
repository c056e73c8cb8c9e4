"""A run's ``stop``: a server whose drain ran out ends its runs where they are, recorded."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from orchestrator.outcome import Failure, FailureKind


class Stopped(Exception):
    """The caller's ``stop`` was set before the run ended; ends the run with ``failure``."""

    failure = Failure(
        FailureKind.shutdown, "the server shut down before the run ended (its drain ran out)"
    )


async def unless_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event | None) -> None:
    """Await ``work``, unless ``stop`` is set first: then cancel it and raise :class:`Stopped`.

    ``work`` runs in a task of its own so that cancelling it leaves this run (and its caller)
    uncancelled, free to record what the work had done so far.
    """
    if stop is None:
        return await work
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not task.done():  # stopped, or this run itself was cancelled
            task.cancel()
            await asyncio.wait({task})
    if stop.is_set() and task.cancelled():
        raise Stopped
    return task.result()
