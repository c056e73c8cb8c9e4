"""``/v1/chat/completions`` and ``/v1/models``: Understudy behind OpenAI's interface.

What a request may be, what model names mean, and the shapes of replies and errors are the
OpenAI protocol's (:mod:`serving.protocol`), shared with batch lines; this module is the HTTP
side: routes, streaming as server-sent events, accounting, and the degradation policy.

A degraded answer (a fallback answered because the lead failed) is marked where every client
and proxy sees it: the ``x-understudy-degraded: true`` header next to ``understudy.degraded``.
With the policy ``error`` — the request's ``understudy.on_degraded``, else its key's
(``keys create --on-degraded``), else ``UNDERSTUDY_API_DEGRADED`` — the client gets 503
``degraded`` instead. A stream's headers go out
before the run ends, so a stream says it in-band: a degraded answer's final chunk carries
``understudy.degraded``, and a run that degrades after its answer began streaming (or under
``error``) ends with an error event.

The routing metadata is also in response headers, which proxies keep when they rewrite bodies
(LiteLLM's does): ``x-understudy-run-id`` on every response of a run; ``-route``, ``-cost-usd``,
``-saved-usd`` and ``-degraded`` once the run has ended. A stream's headers go out with its
first answer text (no later than OpenAI's first token would): a specialist's answer and any
run that ends before its answer streams get all of them; a lead answer streamed token by token
gets the run id only, and its route and cost are in the final chunk's ``understudy`` block.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute

from orchestrator.outcome import RunResult
from orchestrator.request import InvalidRequest
from orchestrator.run import Orchestrator
from serving.api.auth import ApiKeyDep, owner_of, record_token_usage
from serving.protocol import (
    ChatCall,
    ChatCompletionRequest,
    OnDegraded,
    ProtocolError,
    admit_chat_request,
    completion_body,
    completion_chunk,
    degraded,
    error_chunk,
    invalid_body,
    logprobs_block,
    model_object,
    refusal,
    resolve_model,
    served_models,
    tool_calls_block,
    unanswered,
    understudy_block,
    usage_chunk,
)
from specialists.errors import ConfigurationError, UnderstudyError


class ChatRoute(APIRoute):
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


router = APIRouter(prefix="/v1", tags=["chat"])

RUN_ID = "x-understudy-run-id"
"""Response header: the run's id (its transcript, feedback), on every chat response."""
DEGRADED = "x-understudy-degraded"
"""Response header, ``true`` on a degraded answer (or its 503): proxies keep headers."""
ROUTE = "x-understudy-route"
"""Response header: where the answer came from (``understudy.route``)."""
COST = "x-understudy-cost-usd"
"""Response header: what the run cost (``understudy.cost_usd``)."""
SAVED = "x-understudy-saved-usd"
"""Response header: what it saved against the lead alone (``understudy.saved_usd``)."""


def _result_headers(result: RunResult) -> dict[str, str]:
    """The headers of a run that has ended: its id, route, cost, savings, degradation."""
    headers = {RUN_ID: result.run_id, COST: f"{result.cost_usd:.8f}"}
    headers[SAVED] = f"{result.saved_usd:.8f}"
    if result.route:
        headers[ROUTE] = result.route
    if result.degraded:
        headers[DEGRADED] = "true"
    return headers


@router.get("/models")
async def list_models(request: Request, _key: ApiKeyDep) -> dict[str, Any]:
    orchestrator: Orchestrator = request.app.state.orchestrator
    created = int(request.app.state.started_at)
    return {
        "object": "list",
        "data": [
            model_object(name, created=created) for name in served_models(orchestrator.catalog)
        ],
    }


ModelIdPath = Annotated[
    str, Path(min_length=1, max_length=200, description="A model id, as /v1/models lists it.")
]


@router.get("/models/{model_id:path}")
async def retrieve_model(
    model_id: ModelIdPath, request: Request, _key: ApiKeyDep
) -> dict[str, Any]:
    """One listed model; 404 ``model_not_found`` for any other (ids may hold ``/``)."""
    orchestrator: Orchestrator = request.app.state.orchestrator
    resolve_model(model_id, served_models(orchestrator.catalog))
    return model_object(model_id, created=int(request.app.state.started_at))


async def chat_completions(
    body: ChatCompletionRequest, request: Request, key: ApiKeyDep
) -> JSONResponse | StreamingResponse:
    orchestrator: Orchestrator = request.app.state.orchestrator
    call = admit_chat_request(body, served_models(orchestrator.catalog), orchestrator.limits)
    request.state.model = body.model
    policy = call.on_degraded or key.on_degraded or request.app.state.settings.api.degraded
    run_id = uuid.uuid4().hex
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return await _start_stream(request, call, run_id, policy, include_usage=include_usage)
    result = await _run(request, call, run_id=run_id)
    await _account(request, body.model, result)
    headers = _result_headers(result)
    if result.answer is None:
        raise _with_headers(unanswered(result), headers)
    if result.degraded and policy is OnDegraded.error:
        raise _with_headers(degraded(result), headers)
    body_out = completion_body(result, body.model, created=int(time.time()))
    return JSONResponse(body_out, headers=headers)


def _with_headers(error: ProtocolError, headers: dict[str, str]) -> ProtocolError:
    error.headers.update(headers)
    return error


router.add_api_route(
    "/chat/completions",
    chat_completions,
    methods=["POST"],
    response_model=None,
    route_class_override=ChatRoute,
)


async def _run(request: Request, call: ChatCall, **kwargs: Any) -> RunResult:
    """The run ``call`` asks for; stopped, with a transcript, when the app's drain runs out.
    It belongs to the caller's key: only that key's follow-ups continue its tool calls."""
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
    except (InvalidRequest, ConfigurationError) as exc:
        raise refusal(exc) from exc


async def _start_stream(
    request: Request,
    call: ChatCall,
    run_id: str,
    policy: OnDegraded,
    *,
    include_usage: bool,
) -> StreamingResponse:
    """Start the run, and the stream once the run hands over answer text or ends: its headers
    then carry everything known (:func:`_result_headers` if the run is over). A run refused
    before it began is an HTTP error, as nothing is sent yet."""
    deltas: asyncio.Queue[str] = asyncio.Queue()
    begun = asyncio.Event()

    async def on_delta(text: str) -> None:
        begun.set()
        await deltas.put(text)

    run = asyncio.create_task(_run(request, call, run_id=run_id, on_delta=on_delta))
    await _first_text_or_end(run, begun)
    refused = run.exception() if run.done() else None
    if isinstance(refused, ProtocolError):
        raise refused
    ended = run.done() and refused is None
    return StreamingResponse(
        _stream(request, call, run, deltas, policy, include_usage=include_usage),
        media_type="text/event-stream",
        headers={
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            RUN_ID: run_id,
            **(_result_headers(run.result()) if ended else {}),
        },
    )


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


async def _stream(
    request: Request,
    call: ChatCall,
    run: asyncio.Task[RunResult],
    deltas: asyncio.Queue[str],
    policy: OnDegraded,
    *,
    include_usage: bool,
) -> AsyncIterator[str]:
    """OpenAI's chunk format: a role chunk, the answer's content deltas as they come, a final
    chunk with ``finish_reason`` and the ``understudy`` block, usage if asked, then
    ``[DONE]``; or, once the run ends without an answer the client may take, an error event.

    A degraded answer never reaches the deltas (the orchestrator leaves it to us): it is sent
    here, in one piece, under the ``degrade`` policy and only when nothing of the lead's answer
    went out before.
    """
    chunk_id = f"chatcmpl-{time.time_ns():x}"
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        return _event(completion_chunk(chunk_id, created, call.model, delta, finish, **extra))

    streamed = False
    try:
        yield chunk({"role": "assistant", "content": ""})
        while not (run.done() and deltas.empty()):
            getter = asyncio.ensure_future(deltas.get())
            await asyncio.wait({getter, run}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                streamed = True
                yield chunk({"content": getter.result()})
            else:
                getter.cancel()
        try:
            result = run.result()
        except ProtocolError as exc:
            yield _error_event(exc)
            return
        except UnderstudyError as exc:  # headers are sent: report in-band, OpenAI-style
            yield _error_event(refusal(exc))
            return
        await _account(request, call.model, result)
        if result.answer is None:
            yield _error_event(unanswered(result))
            return
        if result.degraded and (streamed or policy is OnDegraded.error):
            yield _error_event(degraded(result, streamed=streamed))
            return
        if result.degraded:
            yield chunk({"content": result.answer})
        if result.app_tool_calls:
            yield chunk({"tool_calls": tool_calls_block(result, indexed=True)})
        yield chunk(
            {},
            result.finish_reason,
            logprobs=logprobs_block(result),
            understudy=understudy_block(result),
        )
        if include_usage:
            yield _event(usage_chunk(chunk_id, created, call.model, result))
        yield "data: [DONE]\n\n"
    finally:
        if not run.done():  # the client went away: stop working for nobody
            run.cancel()


def _event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def _error_event(error: ProtocolError) -> str:
    return _event(error_chunk(error)) + "data: [DONE]\n\n"


async def _account(request: Request, model: str, result: RunResult) -> None:
    """Count the run against the key's daily tokens and in the metrics."""
    request.state.route = result.route
    await record_token_usage(request, result.lead_tokens + result.slm_tokens)
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.observe_run(model, result)


__all__ = ["router"]
