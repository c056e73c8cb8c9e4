"""``/v1/chat/completions`` and ``/v1/models``: Understudy behind OpenAI's interface.

What a request may be, what model names mean, and the shapes of replies and errors are the
OpenAI protocol's (:mod:`serving.protocol`), shared with batch lines; this module is the HTTP
side: routes, streaming as server-sent events, and accounting.
"""

from __future__ import annotations

import asyncio
import json
import time
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
    ProtocolError,
    admit_chat_request,
    completion_body,
    completion_chunk,
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
    body: ChatCompletionRequest, request: Request, _key: ApiKeyDep
) -> JSONResponse | StreamingResponse:
    orchestrator: Orchestrator = request.app.state.orchestrator
    call = admit_chat_request(body, served_models(orchestrator.catalog), orchestrator.limits)
    request.state.model = body.model
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            _stream(request, orchestrator, call, include_usage=include_usage),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    result = await _run(orchestrator, call)
    await _account(request, body.model, result)
    if result.answer is None:
        raise unanswered(result)
    return JSONResponse(completion_body(result, body.model, created=int(time.time())))


router.add_api_route(
    "/chat/completions",
    chat_completions,
    methods=["POST"],
    response_model=None,
    route_class_override=ChatRoute,
)


async def _run(orchestrator: Orchestrator, call: ChatCall, **kwargs: Any) -> RunResult:
    try:
        return await orchestrator.run(
            call.messages,
            call.mode,
            specialist=call.specialist,
            max_tokens=call.max_tokens,
            **kwargs,
        )
    except (InvalidRequest, ConfigurationError) as exc:
        raise refusal(exc) from exc


async def _stream(
    request: Request, orchestrator: Orchestrator, call: ChatCall, *, include_usage: bool
) -> AsyncIterator[str]:
    """OpenAI's chunk format: a role chunk, content deltas as they come, a final chunk with
    ``finish_reason`` and the ``understudy`` block, usage if asked, then ``[DONE]``."""
    chunk_id = f"chatcmpl-{time.time_ns():x}"
    created = int(time.time())
    deltas: asyncio.Queue[str] = asyncio.Queue()

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        return _event(completion_chunk(chunk_id, created, call.model, delta, finish, **extra))

    run = asyncio.create_task(_run(orchestrator, call, on_delta=deltas.put))
    try:
        yield chunk({"role": "assistant", "content": ""})
        while not (run.done() and deltas.empty()):
            getter = asyncio.ensure_future(deltas.get())
            await asyncio.wait({getter, run}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
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
        yield chunk({}, "stop", understudy=understudy_block(result))
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
