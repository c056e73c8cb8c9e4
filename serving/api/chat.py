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
``error``) ends with an error event. Every response carries ``x-understudy-run-id``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute

from orchestrator.outcome import RunResult
from orchestrator.request import InvalidRequest
from orchestrator.run import Orchestrator
from serving.api.auth import ApiKeyDep, record_token_usage
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
    refusal,
    served_models,
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


@router.get("/models")
async def list_models(request: Request, _key: ApiKeyDep) -> dict[str, Any]:
    orchestrator: Orchestrator = request.app.state.orchestrator
    created = int(request.app.state.started_at)
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": created, "owned_by": "understudy"}
            for name in served_models(orchestrator.catalog)
        ],
    }


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
        return StreamingResponse(
            _stream(request, call, run_id, policy, include_usage=include_usage),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", RUN_ID: run_id},
        )
    result = await _run(request, call, run_id=run_id)
    await _account(request, body.model, result)
    headers = {RUN_ID: run_id, **({DEGRADED: "true"} if result.degraded else {})}
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
    """The run ``call`` asks for; stopped, with a transcript, when the app's drain runs out."""
    orchestrator: Orchestrator = request.app.state.orchestrator
    try:
        return await orchestrator.run(
            call.messages,
            call.mode,
            specialist=call.specialist,
            max_tokens=call.max_tokens,
            stop=request.app.state.drain.expired,
            **kwargs,
        )
    except (InvalidRequest, ConfigurationError) as exc:
        raise refusal(exc) from exc


async def _stream(
    request: Request,
    call: ChatCall,
    run_id: str,
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
    deltas: asyncio.Queue[str] = asyncio.Queue()

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        return _event(completion_chunk(chunk_id, created, call.model, delta, finish, **extra))

    run = asyncio.create_task(_run(request, call, run_id=run_id, on_delta=deltas.put))
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
        yield chunk({}, result.finish_reason, understudy=understudy_block(result))
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
