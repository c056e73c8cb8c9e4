"""A scripted lead: an OpenAI-compatible HTTP server on 127.0.0.1 that plays a script.

Product code, not test code: users test their own routes and prompts against it without paying
for a frontier model. Each request to ``/v1/chat/completions`` consumes the next step of the
script — tool calls, a final message (with its token logprobs, when a request asks for them),
or an HTTP failure — and every request body is recorded, so tests can assert what the lead was
shown and asked (the specialist's draft, tool outputs, ``top_logprobs``, …)::

    script = [tool_calls(("math_specialist", {"request": "17*24"})), reply("408")]
    with ScriptedLead(script) as lead:
        settings.lead.base_url = lead.base_url
        ...
    lead.assert_complete()
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from specialists.backend import TokenLogprob


@dataclass(frozen=True)
class Step:
    """One scripted reply."""

    content: str | None = None
    """Assistant text: the final answer, or (with tool calls) what the lead says before them."""
    tool_calls: tuple[tuple[str, dict[str, Any] | str], ...] = ()
    """(tool name, arguments) pairs the lead asks for; arguments given as a string are sent as
    they are, so a script can send what no JSON encoder would (malformed arguments)."""
    status: int = 200
    """A non-200 status makes this step an HTTP failure (429, 500, …)."""
    delay_s: float = 0.0
    """Wait before answering (timeouts, latency)."""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    logprobs: tuple[TokenLogprob, ...] = ()
    """``content``'s tokens (their texts make it up) with their logprobs and alternatives, sent
    as OpenAI sends them when a request asks (``logprobs``, and at most ``top_logprobs``
    alternatives), streamed a token per chunk. A step without them answers a request for them
    with none, as a provider that does not give them."""

    def __post_init__(self) -> None:
        tokens = "".join(entry.token for entry in self.logprobs)
        if self.logprobs and tokens != (self.content or ""):
            raise ValueError(f"the logprobs' tokens make {tokens!r}, not {self.content!r}")


def reply(content: str, **kwargs: Any) -> Step:
    """A final answer."""
    return Step(content=content, **kwargs)


def tool_calls(*calls: tuple[str, dict[str, Any] | str], **kwargs: Any) -> Step:
    """A turn that calls tools (the SDK runs them, then asks the lead again)."""
    return Step(tool_calls=tuple(calls), **kwargs)


def failure(status: int = 500, **kwargs: Any) -> Step:
    """An HTTP error reply."""
    return Step(status=status, **kwargs)


StepSource = Step | Callable[[dict[str, Any]], Step]
"""A fixed step, or a function of the request body that decides the step."""


@dataclass
class ScriptedLead:
    """Serve ``script`` until it runs out (then every request gets HTTP 500 "script exhausted").

    Args:
        script: Steps in order.
        repeat_last: Keep answering with the last step once the script is consumed (benchmarks).
    """

    script: Iterable[StepSource]
    repeat_last: bool = False
    model: str = "scripted-lead"
    requests: list[dict[str, Any]] = field(default_factory=list)
    """Every request body received, in order."""
    _steps: list[StepSource] = field(init=False)
    _server: uvicorn.Server | None = field(default=None, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    port: int = 0

    def __post_init__(self) -> None:
        self._steps = list(self.script)
        self._position = 0
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        """The OpenAI root to give an OpenAI client (``…/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def enqueue(self, *steps: StepSource) -> None:
        with self._lock:
            self._steps.extend(steps)

    def reset(self) -> None:
        """Forget the script and the requests received: the same server, as if new, for the
        next of several tests that share it."""
        with self._lock:
            self._steps.clear()
            self._position = 0
            self.requests.clear()

    def assert_complete(self) -> None:
        """Fail unless every scripted step was consumed."""
        remaining = len(self._steps) - self._position
        assert remaining <= 0, f"{remaining} scripted lead step(s) were never requested"

    def _next(self, body: dict[str, Any]) -> Step:
        with self._lock:
            self.requests.append(body)
            if self._position < len(self._steps):
                source = self._steps[self._position]
                self._position += 1
            elif self.repeat_last and self._steps:
                source = self._steps[-1]
            else:
                return Step(status=500, content="script exhausted")
        return source(body) if callable(source) else source

    async def _completions(self, request: Request) -> Response:
        body = await request.json()
        step = self._next(body)
        if step.delay_s:
            await asyncio.sleep(step.delay_s)
        if step.status != 200:
            return JSONResponse(
                {
                    "error": {
                        "message": step.content or f"scripted failure {step.status}",
                        "type": "scripted",
                        "code": step.status,
                    }
                },
                status_code=step.status,
                headers={"retry-after": "0"},
            )
        completion = _completion(step, body, self.model)
        if body.get("stream"):
            return StreamingResponse(_sse(completion, body), media_type="text/event-stream")
        return JSONResponse(completion)

    async def _models(self, _request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    def start(self) -> ScriptedLead:
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._completions, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="scripted-lead", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("scripted lead did not start within 10 s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> ScriptedLead:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _completion(step: Step, body: dict[str, Any], model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": step.content}
    if step.tool_calls:
        message["tool_calls"] = [
            {
                "id": f"call_{uuid.uuid4().hex[:12]}",
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
                },
            }
            for name, arguments in step.tool_calls
        ]
    prompt_tokens = step.prompt_tokens
    if prompt_tokens is None:  # deterministic and roughly proportional to what was sent
        prompt_tokens = max(1, len(json.dumps(body.get("messages", []))) // 4)
    completion_tokens = step.completion_tokens
    if completion_tokens is None:
        completion_tokens = max(1, len(json.dumps(message)) // 4)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": _logprobs(step.logprobs, body),
                "finish_reason": "tool_calls" if step.tool_calls else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _logprobs(tokens: tuple[TokenLogprob, ...], body: dict[str, Any]) -> dict[str, Any] | None:
    """``choices[].logprobs`` as OpenAI answers ``body``: ``None`` unless it asked for them."""
    if not body.get("logprobs") or not tokens:
        return None
    top = body.get("top_logprobs") or 0
    return {"content": [entry.openai(top=top) for entry in tokens], "refusal": None}


async def _sse(completion: dict[str, Any], body: dict[str, Any]) -> AsyncIterator[str]:
    """The same completion as OpenAI streaming chunks (text word by word, or token by token
    with each token's logprobs; tool calls whole)."""
    base = {key: completion[key] for key in ("id", "created", "model")}
    base["object"] = "chat.completion.chunk"
    choice = completion["choices"][0]
    message = choice["message"]

    def chunk(
        delta: dict[str, Any], finish: str | None = None, logprobs: dict[str, Any] | None = None
    ) -> str:
        part = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return f"data: {json.dumps({**base, 'choices': [part]})}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    if choice["logprobs"]:  # text first, then tool calls, as OpenAI streams them
        for entry in choice["logprobs"]["content"]:
            logprobs = {"content": [entry], "refusal": None}
            yield chunk({"content": entry["token"]}, logprobs=logprobs)
    elif message.get("content"):
        for index, word in enumerate(message["content"].split(" ")):
            yield chunk({"content": word if index == 0 else f" {word}"})
    for index, call in enumerate(message.get("tool_calls") or []):
        yield chunk({"tool_calls": [{"index": index, **call}]})
    yield chunk({}, completion["choices"][0]["finish_reason"])
    if (body.get("stream_options") or {}).get("include_usage"):
        yield f"data: {json.dumps({**base, 'choices': [], 'usage': completion['usage']})}\n\n"
    yield "data: [DONE]\n\n"
