"""The API's own drain: a stopping server refuses new work and ends the runs it cannot finish in
OpenAI's words, before uvicorn cuts them.

Told to stop (SIGTERM, Ctrl-C), uvicorn stops accepting connections, waits up to its graceful
timeout for the requests in flight, then cancels what is left: the client of a cancelled request
gets a plain-text 500 or a cut stream, and its run leaves no transcript. So the app keeps a clock
of its own, :data:`ANSWER_S` shorter than uvicorn's (``understudy serve`` gives uvicorn
``drain + ANSWER_S``):

- the drain begins with the first stop signal: API requests that still arrive (on a connection
  already open) get 503 ``shutting_down`` with ``Retry-After``, and ``/readyz`` is not ready;
- it runs out after ``seconds`` — at least the run budget, so a run that keeps to its budget
  ends by itself — or at once on a second stop signal. Then the runs still going are stopped
  (``Orchestrator.run``'s ``stop``): each ends with the failure kind ``shutdown``, is recorded,
  and its client gets 503 ``shutting_down``; a stream already begun gets it as an error event,
  then the end of the stream.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from starlette.types import ASGIApp, Receive, Scope, Send

from serving.api.errors import error_response
from serving.protocol import shutting_down

ANSWER_S = 5.0
"""What the server's drain keeps beyond the app's: time to answer and record the runs the app
stops when its own drain runs out."""
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
API_PREFIX = "/v1/"
"""Requests refused while draining; probes (``/healthz``, ``/readyz``) and ``/metrics`` still
answer, so the orchestrator sees the server going."""


class Drain:
    """When a stopping app refuses new requests (:attr:`stopping`) and stops its runs
    (:attr:`expired`, the ``stop`` every chat run is given).

    Args:
        seconds: From the first stop signal (or :meth:`begin`) to stopping the runs.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = asyncio.Event()
        self._stopping = False
        self._timer: asyncio.TimerHandle | None = None

    @property
    def stopping(self) -> bool:
        """The drain has begun: new API requests are refused."""
        return self._stopping

    def begin(self) -> None:
        """Begin the drain; called again while it runs (a second stop signal), end it now."""
        if self._stopping:
            self.end()
            return
        self._stopping = True
        self._timer = asyncio.get_running_loop().call_later(self.seconds, self.end)

    def end(self) -> None:
        """Stop the runs still going, now."""
        self._stopping = True
        self.expired.set()
        if self._timer is not None:
            self._timer.cancel()

    @contextmanager
    def on_stop_signals(self) -> Iterator[None]:
        """Begin the drain on SIGTERM and SIGINT, after the server's own handler has run.

        Only a signal the server already handles in Python (uvicorn's handler) is chained: a
        default action (terminate) is left as it is, and signals reach only the main thread, so
        an app served from another thread is drained by calling :meth:`begin` itself.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        loop = asyncio.get_running_loop()
        chained = {sig: h for sig in STOP_SIGNALS if callable(h := signal.getsignal(sig))}

        def handle(sig: int, frame: FrameType | None) -> None:
            chained[signal.Signals(sig)](sig, frame)
            loop.call_soon_threadsafe(self.begin)

        for sig in chained:
            signal.signal(sig, handle)
        try:
            yield
        finally:
            for sig, handler in chained.items():
                signal.signal(sig, handler)


class RefuseWhileDraining:
    """Pure ASGI middleware: once the drain has begun, API requests get 503 ``shutting_down``."""

    def __init__(self, app: ASGIApp, *, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.drain.stopping and scope["path"].startswith(API_PREFIX):
            await error_response(shutting_down())(scope, receive, send)
            return
        await self.app(scope, receive, send)
