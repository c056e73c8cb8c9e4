"""A real HTTP server on 127.0.0.1 whose replies a test scripts (the paid-API boundary)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

Handler = Callable[[str, dict[str, Any]], Awaitable[Response]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve(handler: Handler) -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    """Run ``handler(path, json_body)`` behind uvicorn; yields (root URL, recorded requests)."""
    seen: list[tuple[str, dict[str, Any]]] = []

    async def endpoint(request: Request) -> Response:
        body = await request.json() if request.method == "POST" else {}
        seen.append((request.url.path, body))
        return await handler(request.url.path, body)

    app = Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST"])])
    with serve_app(app, start_timeout_s=10) as url:
        yield url, seen


@contextmanager
def serve_app(app: ASGIApp, *, start_timeout_s: float = 60) -> Iterator[str]:
    """Run ``app`` behind uvicorn on a free port of 127.0.0.1; yields its root URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def chat_completion(
    content: str, logprobs: list[float], *, model: str = "m", finish_reason: str = "stop"
) -> JSONResponse:
    """An OpenAI chat completion with per-token logprobs, as vLLM returns it."""
    tokens = [{"token": f"t{i}", "logprob": lp} for i, lp in enumerate(logprobs)]
    return JSONResponse(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "logprobs": {"content": tokens},
                    "finish_reason": finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": 11,
                "completion_tokens": len(tokens),
                "total_tokens": 11 + len(tokens),
            },
        }
    )


async def sleep_then(seconds: float, response: Response) -> Response:
    await asyncio.sleep(seconds)
    return response
