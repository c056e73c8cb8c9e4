"""Response bodies in OpenAI's shapes, each with Understudy's ``understudy`` block: a
``chat.completion`` (the chat API's answer, and the body of a batch output line) and the
``chat.completion.chunk``\\ s of a stream."""

from __future__ import annotations

from typing import Any

from orchestrator.outcome import RunResult
from serving.protocol.errors import ProtocolError


def completion_body(result: RunResult, model: str, *, created: int) -> dict[str, Any]:
    """A run's answer as OpenAI's ``chat.completion`` object."""
    return {
        "id": f"chatcmpl-{result.run_id}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": _message(result),
                "logprobs": logprobs_block(result),
                "finish_reason": result.finish_reason,
            }
        ],
        "usage": usage_block(result),
        "understudy": understudy_block(result),
    }


def _message(result: RunResult) -> dict[str, Any]:
    """The answer; beside the app's tool calls, the text the lead wrote with them (``None``
    when it wrote none, as OpenAI's)."""
    if not result.app_tool_calls:
        return {"role": "assistant", "content": result.answer}
    calls = tool_calls_block(result)
    return {"role": "assistant", "content": result.answer or None, "tool_calls": calls}


def tool_calls_block(result: RunResult, *, indexed: bool = False) -> list[dict[str, Any]]:
    """The lead's calls of the app's tools in OpenAI's ``tool_calls`` shape (``indexed``: as
    one streaming delta, each call whole, with its ``index``)."""
    return [
        {
            **({"index": index} if indexed else {}),
            "id": call["id"],
            "type": "function",
            "function": {"name": call["name"], "arguments": call["arguments"]},
        }
        for index, call in enumerate(result.app_tool_calls)
    ]


def completion_chunk(
    chunk_id: str,
    created: int,
    model: str,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    *,
    logprobs: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One ``chat.completion.chunk`` carrying ``delta`` (``extra``: the last chunk's
    ``understudy`` block; ``logprobs``: those of the tokens of ``delta``'s content)."""
    choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
    return {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [choice],
        **extra,
    }


def usage_chunk(chunk_id: str, created: int, model: str, result: RunResult) -> dict[str, Any]:
    """The chunk after the last one when ``stream_options.include_usage`` asks for usage."""
    return {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage_block(result),
    }


def error_chunk(error: ProtocolError) -> dict[str, Any]:
    """An error reported in-band once a stream has started (its headers are sent)."""
    return {"error": {**error.body()["error"], "status": error.status_code}}


def understudy_block(result: RunResult) -> dict[str, Any]:
    """The routing metadata every reply carries next to OpenAI's fields."""
    return {
        "run_id": result.run_id,
        "mode": result.mode,
        "route": result.route,
        "specialists": result.specialists,
        "escalated": result.escalated,
        "degraded": result.degraded,
        "confidence": result.confidence,
        "cost_usd": result.cost_usd,
        "saved_usd": result.saved_usd,
        "latency_ms": round(result.latency_ms, 1),
        "continues_run_id": result.continues_run_id,
        "difficulty": result.difficulty.as_dict() if result.difficulty else None,
    }


def logprobs_block(result: RunResult) -> dict[str, Any] | None:
    """The answer's token logprobs in OpenAI's ``choices[].logprobs`` shape, if asked for."""
    if result.logprobs is None:
        return None
    return {"content": [entry.openai() for entry in result.logprobs], "refusal": None}


def usage_block(result: RunResult) -> dict[str, int]:
    prompt = result.lead_input_tokens + result.slm_prompt_tokens
    completion = result.lead_output_tokens + result.slm_completion_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
