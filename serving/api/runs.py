"""What every endpoint that runs the orchestrator shares (``/v1/chat/completions`` and
``/v1/responses``): refusing a bad body in the protocol's words, running an admitted call under
the app's drain, the routing headers, accounting, the degradation policy, and the start of a
streamed run.

The routing metadata is also in response headers, which proxies keep when they rewrite bodies
(LiteLLM's does): ``x-understudy-run-id`` on every response of a run; ``-route``, ``-cost-usd``,
``-saved-usd`` and ``-degraded`` once the run has ended. A stream's headers go out with its
first answer text (no later than OpenAI's first token would): a specialist's answer and any
run that ends before its answer streams get all of them; a lead answer streamed token by token
gets the run id only, and its route and cost are in the stream's last event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute

from orchestrator.outcome import RunResult
from orchestrator.request import InvalidRequest
from orchestrator.run import Orchestrator
from serving.api.auth import owner_of, record_token_usage
from serving.keys import ApiKey
from serving.protocol import (
    ChatCall,
    OnDegraded,
    ProtocolError,
    degraded,
    invalid_body,
    refusal,
    unanswered,
)
from specialists.errors import ConfigurationError, SpecialistPaused, UnderstudyError

RUN_ID = "x-understudy-run-id"
"""Response header: the run's id (its transcript, feedback), on every response of a run."""
DEGRADED = "x-understudy-degraded"
"""Response header, ``true`` on a degraded answer (or its 503): proxies keep headers."""
ROUTE = "x-understudy-route"
"""Response header: where the answer came from (``understudy.route``)."""
COST = "x-understudy-cost-usd"
"""Response header: what the run cost (``understudy.cost_usd``)."""
SAVED = "x-understudy-saved-usd"
"""Response header: what it saved against the lead alone (``understudy.saved_usd``)."""


class ProtocolRoute(APIRoute):
    """A route whose body failing validation is the protocol's ``invalid_body`` error — the
    code and message a batch line with the same body gets — rather than the API's generic
    validation error."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                raise invalid_body(exc.errors()) from exc

        return checked


def result_headers(result: RunResult) -> dict[str, str]:
    """The headers of a run that has ended: its id, route, cost, savings, degradation."""
    headers = {RUN_ID: result.run_id, COST: f"{result.cost_usd:.8f}"}
    headers[SAVED] = f"{result.saved_usd:.8f}"
    if result.route:
        headers[ROUTE] = result.route
    if result.degraded:
        headers[DEGRADED] = "true"
    return headers


def with_headers(error: ProtocolError, headers: dict[str, str]) -> ProtocolError:
    error.headers.update(headers)
    return error


def degradation_policy(request: Request, call: ChatCall, key: ApiKey) -> OnDegraded:
    """The request's own policy, else its key's, else the server's setting."""
    return call.on_degraded or key.on_degraded or request.app.state.settings.api.degraded


async def run_call(request: Request, call: ChatCall, **kwargs: Any) -> RunResult:
    """The run ``call`` asks for; stopped, with a transcript, when the app's drain runs out.
    It belongs to the caller's key: only that key's follow-ups continue its tool calls.

    Raises:
        ProtocolError: the orchestrator refused the call before it ran.
    """
    orchestrator: Orchestrator = request.app.state.orchestrator
    try:
        return await orchestrator.run(
            call.messages,
            call.mode,
            specialist=call.specialist,
            options=call.options,
            stop=request.app.state.drain.expired,
            owner=owner_of(request.state.api_key),
            **kwargs,
        )
    except (InvalidRequest, ConfigurationError, SpecialistPaused) as exc:
        raise refusal(exc) from exc


async def deliverable(
    request: Request, model: str, result: RunResult, policy: OnDegraded, *, streamed: bool = False
) -> RunResult:
    """``result``, accounted, once it is an answer the client may take.

    Args:
        streamed: Part of the lead's answer already went out, so a degraded fallback cannot
            replace it.

    Raises:
        ProtocolError: 503 when the run has no answer, or a degraded one the policy (or a
            stream already begun) refuses.
    """
    await account(request, model, result)
    if result.answer is None:
        raise unanswered(result)
    if result.degraded and (streamed or policy is OnDegraded.error):
        raise degraded(result, streamed=streamed)
    return result


async def account(request: Request, model: str, result: RunResult) -> None:
    """Count the run against the key's daily tokens and in the metrics."""
    request.state.route = result.route
    await record_token_usage(request, result.lead_tokens + result.slm_tokens)
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.observe_run(model, result)


@dataclass
class StreamedRun:
    """A run whose answer text streams: the task, the text it has handed over so far, and the
    headers the stream starts with."""

    task: asyncio.Task[RunResult]
    deltas: asyncio.Queue[str]
    headers: dict[str, str]

    async def texts(self) -> AsyncIterator[str]:
        """The answer's text as the run hands it over, until the run has ended."""
        while not (self.task.done() and self.deltas.empty()):
            getter = asyncio.ensure_future(self.deltas.get())
            await asyncio.wait({getter, self.task}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield getter.result()
            else:
                getter.cancel()

    def result(self) -> RunResult:
        """The ended run's result.

        Raises:
            ProtocolError: the run was refused, or failed in a way the client is told of.
        """
        try:
            return self.task.result()
        except ProtocolError:
            raise
        except UnderstudyError as exc:  # headers are sent: report in-band, OpenAI-style
            raise refusal(exc) from exc

    def stop(self) -> None:
        """Cancel the run if it is still going (the client went away: stop working for
        nobody)."""
        if not self.task.done():
            self.task.cancel()


async def start_streamed_run(request: Request, call: ChatCall, run_id: str) -> StreamedRun:
    """Start the run, and return once it hands over answer text or ends: the headers then
    carry everything known (:func:`result_headers` if the run is over). A run refused before it
    began is an HTTP error, raised here, as nothing is sent yet."""
    deltas: asyncio.Queue[str] = asyncio.Queue()
    begun = asyncio.Event()

    async def on_delta(text: str) -> None:
        begun.set()
        await deltas.put(text)

    run = asyncio.create_task(run_call(request, call, run_id=run_id, on_delta=on_delta))
    await _first_text_or_end(run, begun)
    refused = run.exception() if run.done() else None
    if isinstance(refused, ProtocolError):
        raise refused
    ended = run.done() and refused is None
    headers = {
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
        RUN_ID: run_id,
        **(result_headers(run.result()) if ended else {}),
    }
    return StreamedRun(run, deltas, headers)


async def _first_text_or_end(run: asyncio.Task[RunResult], begun: asyncio.Event) -> None:
    """Wait until the run hands over answer text or ends, whichever is first; the run is
    cancelled if the client goes away meanwhile."""
    waiter = asyncio.ensure_future(begun.wait())
    try:
        await asyncio.wait({run, waiter}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        run.cancel()
        raise
    finally:
        waiter.cancel()
