"""A run's outcome in the Responses API's shapes: the ``response`` object (with Understudy's
``understudy`` block, as every reply carries it), its output items, the typed events of a
stream, and the conversation a next response continues from.

The answer is one ``message`` item with one ``output_text`` part; the lead's calls of the app's
tools are ``function_call`` items (``call_id``, ``name``, ``arguments``), after the message
item of the text the lead wrote beside them, if it wrote any (chat: ``content`` beside
``tool_calls``). A specialist's answer cut at
``max_output_tokens`` is ``status: incomplete`` with ``incomplete_details.reason``
``max_output_tokens``.
"""

from __future__ import annotations

from typing import Any

from orchestrator.outcome import RunResult
from serving.protocol.errors import ProtocolError
from serving.protocol.responses import understudy_block
from serving.protocol.responses_api import ResponsesCall
from specialists.backend import ChatMessage, FunctionCall


def response_id(run_id: str) -> str:
    """The id of the response a run answered: its run id, in OpenAI's ``resp_`` form."""
    return f"resp_{run_id}"


def _message_id(run_id: str) -> str:
    return f"msg_{run_id}"


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(run_id: str, text: str | None, *, status: str = "completed") -> dict[str, Any]:
    """The answer's ``message`` item (``text`` ``None``: just begun, no part yet)."""
    return {
        "type": "message",
        "id": _message_id(run_id),
        "status": status,
        "role": "assistant",
        "content": [] if text is None else [_text_part(text)],
    }


def function_call_item(
    call: FunctionCall, *, arguments: str | None = None, status: str = "completed"
) -> dict[str, Any]:
    """One call of the app's tools as a ``function_call`` item (``arguments``: as streamed so
    far, when not the call's own)."""
    return {
        "type": "function_call",
        "id": f"fc_{call['id']}",
        "call_id": call["id"],
        "name": call["name"],
        "arguments": call["arguments"] if arguments is None else arguments,
        "status": status,
    }


def output_items(result: RunResult) -> list[dict[str, Any]]:
    """The response's ``output``: the answer, or the app's tool calls after the text the lead
    wrote beside them (if any)."""
    if result.app_tool_calls:
        text = [message_item(result.run_id, result.answer)] if result.answer else []
        return [*text, *(function_call_item(call) for call in result.app_tool_calls)]
    status = "incomplete" if result.finish_reason == "length" else "completed"
    return [message_item(result.run_id, result.answer or "", status=status)]


def usage(result: RunResult) -> dict[str, Any]:
    """OpenAI's Responses usage: the lead's and the specialists' tokens together."""
    prompt = result.lead_input_tokens + result.slm_prompt_tokens
    completion = result.lead_output_tokens + result.slm_completion_tokens
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def response_object(
    call: ResponsesCall,
    run_id: str,
    created_at: int,
    *,
    result: RunResult | None = None,
    error: ProtocolError | None = None,
) -> dict[str, Any]:
    """The ``response`` object: in progress (no ``result`` yet), failed (``error``) or done."""
    status = "in_progress"
    incomplete = None
    output: list[dict[str, Any]] = []
    if error is not None:
        status = "failed"
    elif result is not None:
        output = output_items(result)
        truncated = result.finish_reason == "length" and not result.app_tool_calls
        status = "incomplete" if truncated else "completed"
        incomplete = {"reason": "max_output_tokens"} if truncated else None
    return {
        "id": response_id(run_id),
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": (
            {"code": "server_error", "message": error.message} if error is not None else None
        ),
        "incomplete_details": incomplete,
        "model": call.model,
        "output": output,
        **call.request.echo(),
        "usage": usage(result) if result is not None else None,
        **({"understudy": understudy_block(result)} if result is not None else {}),
    }


def conversation_after(call: ResponsesCall, result: RunResult) -> list[ChatMessage]:
    """What a next response continues from: this one's conversation and its answer (or the
    app's tool calls, whose outputs the next input brings)."""
    answer: ChatMessage = {"role": "assistant", "content": result.answer or ""}
    if result.app_tool_calls:
        answer["tool_calls"] = list(result.app_tool_calls)
    return [*call.conversation, answer]


class ResponseEvents:
    """The typed server-sent events of one streamed response, numbered in the order they are
    made (``sequence_number``), each as the ``data`` of an SSE event named by its type."""

    def __init__(self, call: ResponsesCall, run_id: str, created_at: int) -> None:
        self._call = call
        self._run_id = run_id
        self._created_at = created_at
        self._sequence = 0
        self._text_open = False

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def _response(self, **outcome: Any) -> dict[str, Any]:
        return response_object(self._call, self._run_id, self._created_at, **outcome)

    def started(self) -> list[dict[str, Any]]:
        snapshot = self._response()
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    @property
    def streamed(self) -> bool:
        """Whether answer text went out already."""
        return self._text_open

    def text_delta(self, text: str) -> list[dict[str, Any]]:
        """A piece of the answer; the first opens its message item and text part."""
        where = {"item_id": _message_id(self._run_id), "output_index": 0, "content_index": 0}
        opening = [] if self._text_open else self._open_text()
        delta = self._event("response.output_text.delta", **where, delta=text, logprobs=[])
        return [*opening, delta]

    def _open_text(self) -> list[dict[str, Any]]:
        """The answer's message item and its one text part open, at output index 0."""
        self._text_open = True
        where = {"item_id": _message_id(self._run_id), "output_index": 0}
        return [
            self._event(
                "response.output_item.added",
                output_index=0,
                item=message_item(self._run_id, None, status="in_progress"),
            ),
            self._event(
                "response.content_part.added", **where, content_index=0, part=_text_part("")
            ),
        ]

    def items_done(self, result: RunResult) -> list[dict[str, Any]]:
        """The rest of the output, once the run has ended: the answer's text closed (sent
        whole first if none of it streamed: a specialist's, a degraded fallback's), or each
        tool call added, its arguments (in one delta), and done, after the text beside them."""
        events: list[dict[str, Any]] = []
        calls = iter(result.app_tool_calls)
        for index, item in enumerate(output_items(result)):
            where = {"item_id": item["id"], "output_index": index}
            if item["type"] == "message":
                part = item["content"][0]
                if not self._text_open:
                    events += self.text_delta(part["text"]) if part["text"] else self._open_text()
                events += [
                    self._event(
                        "response.output_text.done",
                        **where,
                        content_index=0,
                        text=part["text"],
                        logprobs=[],
                    ),
                    self._event("response.content_part.done", **where, content_index=0, part=part),
                ]
            else:
                call = next(calls)
                opened = function_call_item(call, arguments="", status="in_progress")
                arguments = call["arguments"]
                events += [
                    self._event("response.output_item.added", output_index=index, item=opened),
                    self._event("response.function_call_arguments.delta", **where, delta=arguments),
                    self._event(
                        "response.function_call_arguments.done",
                        **where,
                        name=call["name"],
                        arguments=arguments,
                    ),
                ]
            events.append(self._event("response.output_item.done", output_index=index, item=item))
        return events

    def finished(self, result: RunResult) -> dict[str, Any]:
        """``response.completed``, or ``response.incomplete`` for an answer cut short."""
        response = self._response(result=result)
        return self._event(f"response.{response['status']}", response=response)

    def failed(self, error: ProtocolError) -> dict[str, Any]:
        return self._event("response.failed", response=self._response(error=error))
