"""``/v1/chat/completions`` and ``/v1/models``: Understudy behind OpenAI's interface.

Model names choose the mode: ``understudy-router``, ``-cascade``, ``-llm``, ``-slm`` (the
pre-router picks the specialist), and ``understudy-<specialist>`` for one specialist directly.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from orchestrator.modes import Mode
from orchestrator.run import InvalidRequest, Orchestrator, RunResult
from serving.api.auth import ApiKeyDep, record_token_usage
from serving.api.errors import ApiError
from serving.api.schemas import ChatCompletionRequest, understudy_block, usage_block
from serving.settings import ApiSettings
from specialists.catalog import Catalog
from specialists.errors import ConfigurationError, UnderstudyError

router = APIRouter(prefix="/v1", tags=["chat"])
MODE_MODELS = {f"understudy-{mode.value}": mode for mode in Mode}


def served_models(catalog: Catalog) -> dict[str, tuple[Mode, str | None]]:
    """Every model name the API answers to, with the mode and specialist it means."""
    models: dict[str, tuple[Mode, str | None]] = {
        name: (mode, None) for name, mode in MODE_MODELS.items()
    }
    for name in catalog.names:
        models.setdefault(f"understudy-{name}", (Mode.slm, name))
    return models


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


@router.post("/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, _key: ApiKeyDep
) -> JSONResponse | StreamingResponse:
    orchestrator: Orchestrator = request.app.state.orchestrator
    check_limits(body, request.app.state.settings.api)
    mode, specialist = _resolve_model(body.model, orchestrator.catalog)
    request.state.model = body.model
    if body.stream:
        return StreamingResponse(
            _stream(request, orchestrator, body, mode, specialist),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    result = await _run(orchestrator, body, mode, specialist)
    await _account(request, body.model, result)
    if result.answer is None:
        raise ApiError(503, "upstream_unavailable", result.error or "no answer was produced")
    return JSONResponse(completion_body(result, body.model, created=int(time.time())))


def completion_body(result: RunResult, model: str, *, created: int) -> dict[str, Any]:
    """A run's answer as OpenAI's ``chat.completion`` object (batch output lines carry it too)."""
    return {
        "id": f"chatcmpl-{result.run_id}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.answer},
                "finish_reason": "stop",
            }
        ],
        "usage": usage_block(result),
        "understudy": understudy_block(result),
    }


async def _run(
    orchestrator: Orchestrator,
    body: ChatCompletionRequest,
    mode: Mode,
    specialist: str | None,
    **kwargs: Any,
) -> RunResult:
    try:
        return await orchestrator.run(
            body.chat_messages(),
            mode,
            specialist=specialist,
            max_tokens=body.max_completion_tokens or body.max_tokens,
            **kwargs,
        )
    except InvalidRequest as exc:
        raise ApiError(400, "invalid_request", str(exc)) from exc
    except ConfigurationError as exc:
        raise ApiError(503, "model_not_configured", str(exc)) from exc


async def _stream(
    request: Request,
    orchestrator: Orchestrator,
    body: ChatCompletionRequest,
    mode: Mode,
    specialist: str | None,
) -> AsyncIterator[str]:
    """OpenAI's chunk format: a role chunk, content deltas as they come, a final chunk with
    ``finish_reason`` and the ``understudy`` block, usage if asked, then ``[DONE]``."""
    chunk_id = f"chatcmpl-{time.time_ns():x}"
    created = int(time.time())
    deltas: asyncio.Queue[str] = asyncio.Queue()

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        payload = {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    run = asyncio.create_task(_run(orchestrator, body, mode, specialist, on_delta=deltas.put))
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
        except ApiError as exc:
            yield _error_event(exc.status_code, exc.code, exc.message)
            return
        except UnderstudyError as exc:  # headers are sent: report in-band, OpenAI-style
            yield _error_event(500, "internal_error", str(exc))
            return
        await _account(request, body.model, result)
        if result.answer is None:
            yield _error_event(503, "upstream_unavailable", result.error or "no answer")
            return
        yield chunk({}, "stop", understudy=understudy_block(result))
        if body.stream_options and body.stream_options.include_usage:
            yield (
                "data: "
                + json.dumps(
                    {
                        "id": chunk_id,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": body.model,
                        "choices": [],
                        "usage": usage_block(result),
                    }
                )
                + "\n\n"
            )
        yield "data: [DONE]\n\n"
    finally:
        if not run.done():  # the client went away: stop working for nobody
            run.cancel()


def _error_event(status: int, code: str, message: str) -> str:
    error = {"message": message, "type": "server_error", "param": None, "code": code}
    return f"data: {json.dumps({'error': {**error, 'status': status}})}\n\ndata: [DONE]\n\n"


def _resolve_model(model: str, catalog: Catalog) -> tuple[Mode, str | None]:
    models = served_models(catalog)
    if model not in models:
        raise ApiError(
            404,
            "model_not_found",
            f"model {model!r} does not exist; available: {', '.join(models)}",
            param="model",
        )
    return models[model]


def check_limits(body: ChatCompletionRequest, limits: ApiSettings) -> None:
    """Refuse a request over the API's size limits (batch requests are held to the same).

    Raises:
        ApiError: 400 or 413, naming the limit.
    """
    if len(body.messages) > limits.max_messages:
        raise ApiError(
            400,
            "too_many_messages",
            f"{len(body.messages)} messages; the limit is {limits.max_messages}",
            param="messages",
        )
    characters = sum(len(m.text()) for m in body.messages)
    if characters > limits.max_request_chars:
        raise ApiError(
            413,
            "request_too_large",
            f"the messages hold {characters} characters; the limit is {limits.max_request_chars}",
            param="messages",
        )
    requested = body.max_completion_tokens or body.max_tokens
    if requested is not None and requested > limits.max_tokens_limit:
        raise ApiError(
            400,
            "max_tokens_too_large",
            f"max_tokens {requested} is above the limit of {limits.max_tokens_limit}",
            param="max_tokens",
        )


async def _account(request: Request, model: str, result: RunResult) -> None:
    """Count the run against the key's daily tokens and in the metrics."""
    request.state.route = result.route
    await record_token_usage(request, result.lead_tokens + result.slm_tokens)
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.observe_run(model, result)


__all__ = ["check_limits", "completion_body", "router", "served_models"]
