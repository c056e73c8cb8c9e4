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

The routing metadata is also in the ``x-understudy-*`` response headers, which proxies keep
(:mod:`serving.api.runs`, shared with ``/v1/responses``); a stream's final chunk carries the
``understudy`` block too.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, StreamingResponse

from orchestrator.run import Orchestrator
from serving.api.auth import ApiKeyDep
from serving.api.runs import (
    ProtocolRoute,
    StreamedRun,
    degradation_policy,
    deliverable,
    result_headers,
    run_call,
    start_streamed_run,
    with_headers,
)
from serving.protocol import (
    ChatCall,
    ChatCompletionRequest,
    OnDegraded,
    ProtocolError,
    admit_chat_request,
    completion_body,
    completion_chunk,
    error_chunk,
    logprobs_block,
    model_object,
    resolve_model,
    served_models,
    tool_calls_block,
    understudy_block,
    usage_chunk,
)

router = APIRouter(prefix="/v1", tags=["chat"])


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
    served = served_models(orchestrator.catalog, orchestrator.lineups.paused)
    call = admit_chat_request(body, served, orchestrator.limits)
    request.state.model = body.model
    policy = degradation_policy(request, call, key)
    run_id = uuid.uuid4().hex
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        run = await start_streamed_run(request, call, run_id)
        return StreamingResponse(
            _stream(request, call, run, policy, include_usage=include_usage),
            media_type="text/event-stream",
            headers=run.headers,
        )
    result = await run_call(request, call, run_id=run_id)
    headers = result_headers(result)
    try:
        await deliverable(request, body.model, result, policy)
    except ProtocolError as exc:
        raise with_headers(exc, headers) from None
    body_out = completion_body(result, body.model, created=int(time.time()))
    return JSONResponse(body_out, headers=headers)


router.add_api_route(
    "/chat/completions",
    chat_completions,
    methods=["POST"],
    response_model=None,
    route_class_override=ProtocolRoute,
)


async def _stream(
    request: Request,
    call: ChatCall,
    run: StreamedRun,
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

    With ``logprobs`` the answer goes in one chunk, with all its tokens' logprobs, once the run
    has ended (they come whole with its result): clients such as the agents SDK read a
    chunk's logprobs only beside its content.
    """
    chunk_id = f"chatcmpl-{time.time_ns():x}"
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        return _event(completion_chunk(chunk_id, created, call.model, delta, finish, **extra))

    with_logprobs = call.options.sampling.logprobs
    streamed = False
    held: list[str] = []
    try:
        yield chunk({"role": "assistant", "content": ""})
        async for text in run.texts():
            if with_logprobs:
                held.append(text)
                continue
            streamed = True
            yield chunk({"content": text})
        try:
            result = await deliverable(request, call.model, run.result(), policy, streamed=streamed)
        except ProtocolError as exc:
            yield _event(error_chunk(exc)) + "data: [DONE]\n\n"
            return
        logprobs = logprobs_block(result)
        answer = result.answer if result.degraded else "".join(held)
        if answer:
            yield chunk({"content": answer}, logprobs=logprobs)
            logprobs = None  # given with the text they are of
        if result.app_tool_calls:
            yield chunk({"tool_calls": tool_calls_block(result, indexed=True)})
        yield chunk(
            {},
            result.finish_reason,
            logprobs=logprobs,
            understudy=understudy_block(result),
        )
        if include_usage:
            yield _event(usage_chunk(chunk_id, created, call.model, result))
        yield "data: [DONE]\n\n"
    finally:
        run.stop()


def _event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


__all__ = ["router"]
