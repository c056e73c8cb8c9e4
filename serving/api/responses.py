"""``/v1/responses``: OpenAI's Responses API in front of the same runs as the chat API.

A request (:mod:`serving.protocol.responses_api`) becomes the chat call it means — every mode
and specialist model, the app's tools, structured outputs — and runs through
:mod:`serving.api.runs`: the same routing headers, degradation policy, accounting and
transcripts as ``/v1/chat/completions``. The answer comes back as a ``response`` object, or
streamed as its typed events (``response.created`` … ``response.completed``, or
``response.failed`` once the stream has begun).

A response is stored unless ``store`` is false: its conversation, owned by the calling key, is
what ``previous_response_id`` continues, and ``GET``/``DELETE /v1/responses/{id}`` read and
remove it. Another key's response is a 404, like a missing one.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, StreamingResponse

from database import StoreError
from orchestrator.outcome import RunResult
from orchestrator.run import Orchestrator
from serving.api.auth import ApiKeyDep, owner_of, visible_to
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
from serving.keys import ApiKey
from serving.protocol import OnDegraded, ProtocolError, database_unavailable, served_models
from serving.protocol.responses_api import ResponsesCall, ResponsesRequest, admit_responses_request
from serving.protocol.responses_output import (
    ResponseEvents,
    conversation_after,
    response_object,
)
from serving.stored_responses import ResponseNotFound, ResponseStore

router = APIRouter(prefix="/v1", tags=["responses"])

ResponseIdPath = Annotated[str, Path(min_length=1, max_length=200)]


def _not_found(exc: ResponseNotFound) -> ProtocolError:
    return ProtocolError(404, "response_not_found", str(exc), param="previous_response_id")


async def create_response(
    body: ResponsesRequest, request: Request, key: ApiKeyDep
) -> JSONResponse | StreamingResponse:
    orchestrator: Orchestrator = request.app.state.orchestrator
    store: ResponseStore = request.app.state.responses
    history = None
    if body.previous_response_id is not None:
        try:
            previous = await store.get(body.previous_response_id, owned_by=visible_to(key))
        except ResponseNotFound as exc:
            raise _not_found(exc) from exc
        history = previous.conversation
    call = admit_responses_request(
        body,
        served_models(orchestrator.catalog, orchestrator.lineups.paused),
        orchestrator.limits,
        history=history,
    )
    request.state.model = body.model
    policy = degradation_policy(request, call.call, key)
    run_id = uuid.uuid4().hex
    created_at = int(time.time())
    if body.stream:
        run = await start_streamed_run(request, call.call, run_id)
        events = _stream(request, call, run, policy, key, ResponseEvents(call, run_id, created_at))
        return StreamingResponse(events, media_type="text/event-stream", headers=run.headers)
    result = await run_call(request, call.call, run_id=run_id)
    headers = result_headers(result)
    try:
        await deliverable(request, body.model, result, policy)
    except ProtocolError as exc:
        raise with_headers(exc, headers) from None
    response = response_object(call, run_id, created_at, result=result)
    await _keep(request, call, result, response, key)
    return JSONResponse(response, headers=headers)


router.add_api_route(
    "/responses",
    create_response,
    methods=["POST"],
    response_model=None,
    route_class_override=ProtocolRoute,
)


@router.get("/responses/{response_id}")
async def retrieve_response(
    response_id: ResponseIdPath, request: Request, key: ApiKeyDep
) -> dict[str, Any]:
    store: ResponseStore = request.app.state.responses
    try:
        stored = await store.get(response_id, owned_by=visible_to(key))
    except ResponseNotFound as exc:
        raise ProtocolError(404, "response_not_found", str(exc)) from exc
    return stored.body


@router.delete("/responses/{response_id}")
async def delete_response(
    response_id: ResponseIdPath, request: Request, key: ApiKeyDep
) -> dict[str, Any]:
    store: ResponseStore = request.app.state.responses
    try:
        await store.delete(response_id, owned_by=visible_to(key))
    except ResponseNotFound as exc:
        raise ProtocolError(404, "response_not_found", str(exc)) from exc
    return {"id": response_id, "object": "response.deleted", "deleted": True}


async def _keep(
    request: Request,
    call: ResponsesCall,
    result: RunResult,
    response: dict[str, Any],
    key: ApiKey,
) -> None:
    """Store the response for ``previous_response_id`` and retrieval, unless ``store`` is
    false."""
    if call.request.store is False:
        return
    store: ResponseStore = request.app.state.responses
    await store.add(
        response,
        run_id=result.run_id,
        conversation=conversation_after(call, result),
        owner_key_id=owner_of(key),
    )


async def _stream(
    request: Request,
    call: ResponsesCall,
    run: StreamedRun,
    policy: OnDegraded,
    key: ApiKey,
    events: ResponseEvents,
) -> AsyncIterator[str]:
    """The response's events: created and in progress, the answer's text deltas as they come
    (a specialist's or a degraded fallback's answer in one piece), the app's tool calls once
    the run has ended, then ``response.completed`` — or ``response.failed`` once the run ends
    without an answer the client may take."""
    try:
        for event in events.started():
            yield _sse(event)
        async for text in run.texts():
            for event in events.text_delta(text):
                yield _sse(event)
        try:
            result = await deliverable(
                request, call.model, run.result(), policy, streamed=events.streamed
            )
        except ProtocolError as exc:
            yield _sse(events.failed(exc))
            return
        for event in events.items_done(result):
            yield _sse(event)
        finished = events.finished(result)
        try:
            await _keep(request, call, result, finished["response"], key)
        except StoreError:
            yield _sse(events.failed(database_unavailable()))
            return
        yield _sse(finished)
    finally:
        run.stop()


def _sse(event: dict[str, Any]) -> str:
    return f"event: {event['type']}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"


__all__ = ["router"]
