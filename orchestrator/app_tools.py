"""The app's own tools (OpenAI function calling): offered to the lead, never run here.

A caller may send function tools with its request. The lead sees them beside ours (``router``)
or alone (``llm``); when it calls one, the run stops and the calls go back to the caller
(``finish_reason: tool_calls``), who runs them and sends the results in its next request as
``tool`` messages. Our own tools (specialists, exact tools) still run server-side in the same
loop: an app tool call only ends it.

The SDK needs a callable for every tool; an app tool's callable does nothing (the
``StopAtTools`` behaviour ends the run right after its turn), and the calls are read back from
the run's items, with the turn that made them (:func:`hand_over`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from agents import (
    FunctionTool,
    ItemHelpers,
    MessageOutputItem,
    RunItem,
    ToolCallItem,
    ToolCallOutputItem,
    TResponseInputItem,
)
from agents.exceptions import UserError
from agents.strict_schema import ensure_strict_json_schema
from agents.tool_context import ToolContext
from openai.types.responses import ResponseFunctionToolCall

from orchestrator.handover import has_tool_turns, new_call_id
from orchestrator.modes import Mode
from orchestrator.request import UnsupportedParameter
from specialists.backend import ChatMessage, FunctionCall

ToolChoice = Literal["auto", "none", "required"] | str
"""OpenAI's ``tool_choice``: a mode, or the one tool's name the lead must call."""


@dataclass(frozen=True, slots=True)
class AppTool:
    """One function tool of the caller's, as OpenAI's ``tools[]`` describes it."""

    name: str
    description: str
    parameters: dict[str, Any]
    """The arguments' JSON schema, passed to the lead as it is."""
    strict: bool = False
    """OpenAI's ``strict``: the lead must follow the schema exactly, which must then be one the
    SDK can make strict (:func:`strict_schema_problem`)."""


def strict_schema_problem(parameters: dict[str, Any]) -> str | None:
    """Why ``parameters`` cannot be a strict tool schema, or ``None`` if it can."""
    try:
        ensure_strict_json_schema(copy.deepcopy(parameters))
    except (UserError, TypeError, ValueError, LookupError) as exc:  # what it raises on bad input
        return str(exc)
    return None


@dataclass(frozen=True, slots=True)
class AppTools:
    """The caller's tools and how the lead may use them."""

    tools: tuple[AppTool, ...]
    choice: ToolChoice | None = None
    """``None``: the lead provider's default (``auto``)."""
    parallel: bool | None = None
    """OpenAI's ``parallel_tool_calls``; ``None``: the provider's default."""

    @property
    def callable(self) -> bool:
        """Whether the lead may call them (``tool_choice`` is not ``none``)."""
        return bool(self.tools) and self.choice != "none"

    @property
    def names(self) -> list[str]:
        return [tool.name for tool in self.tools]


async def _returned_to_caller(_context: ToolContext[Any], _arguments: str) -> str:
    # Never read: StopAtTools ends the run after this turn, and the call goes to the caller.
    return "(answered by the caller)"


def function_tools(app: AppTools) -> list[FunctionTool]:
    """The caller's tools as SDK tools the lead can call; the run stops at them."""
    return [
        FunctionTool(
            name=tool.name,
            description=tool.description,
            params_json_schema=tool.parameters,
            on_invoke_tool=_returned_to_caller,
            strict_json_schema=tool.strict,
        )
        for tool in app.tools
    ]


def hand_over(
    items: Sequence[RunItem], app: AppTools
) -> tuple[tuple[FunctionCall, ...], list[ChatMessage]]:
    """The calls of the caller's tools among a run's items, under ids of our own
    (:func:`~orchestrator.handover.new_call_id`), and the run's turns as chat messages.

    The turns are what the caller's next request lacks (:mod:`orchestrator.handover`): the
    lead's text and calls (ours and the caller's, as it made them) and our tools' results.
    The SDK's outputs for the caller's calls are placeholders and are left out: the caller
    answers those. The calls are the last turn's, since the run stops at the first turn that
    makes one; ``()`` when it made none.
    """
    names = set(app.names)
    renamed: dict[str, str] = {}
    """The lead's id of each call of the caller's tools → the id the caller gets."""
    turn: list[ChatMessage] = []
    for item in items:
        if isinstance(item, MessageOutputItem):
            turn.append({"role": "assistant", "content": ItemHelpers.text_message_output(item)})
        elif isinstance(item, ToolCallItem) and isinstance(
            raw := item.raw_item, ResponseFunctionToolCall
        ):
            call_id = raw.call_id
            if raw.name in names:
                call_id = renamed[raw.call_id] = new_call_id()
            if not turn or turn[-1]["role"] != "assistant":
                turn.append({"role": "assistant", "content": ""})
            call = FunctionCall(id=call_id, name=raw.name, arguments=raw.arguments)
            turn[-1].setdefault("tool_calls", []).append(call)
        elif isinstance(item, ToolCallOutputItem) and item.call_id and item.call_id not in renamed:
            # Our tools return text: what the lead was shown.
            turn.append({"role": "tool", "tool_call_id": item.call_id, "content": str(item.output)})
    handed = set(renamed.values())
    return tuple(c for m in turn for c in m.get("tool_calls", ()) if c["id"] in handed), turn


def lead_items(messages: Sequence[ChatMessage]) -> list[TResponseInputItem]:
    """A chat history as the SDK's input items: tool turns become its ``function_call`` and
    ``function_call_output`` items, which its Chat Completions model sends back to the lead as
    assistant ``tool_calls`` and ``tool`` messages. An assistant turn with text and calls is
    an output ``message`` item before them, which the SDK merges with them into one message
    (a plain message would go as an assistant message of its own)."""
    items: list[dict[str, Any]] = []
    for message in messages:
        if message["role"] == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message.get("tool_call_id", ""),
                    "output": message["content"],
                }
            )
            continue
        calls = message.get("tool_calls") or []
        if message["content"] and calls:
            items.append(_output_message(message["content"]))
        elif message["content"] or not calls:
            items.append({"role": message["role"], "content": message["content"]})
        items.extend(
            {
                "type": "function_call",
                "call_id": call["id"],
                "name": call["name"],
                "arguments": call["arguments"],
            }
            for call in calls
        )
    return cast(list[TResponseInputItem], items)


def _output_message(text: str) -> dict[str, Any]:
    """An assistant's text as the SDK's output ``message`` item (its id is never sent)."""
    return {
        "type": "message",
        "id": "msg_history",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def lead_only(app: AppTools | None, messages: Sequence[ChatMessage]) -> bool:
    """Whether only the lead can answer: its tools may be called, or the history has tool turns
    (specialists neither call tools nor read tool turns)."""
    return (app is not None and app.callable) or has_tool_turns(messages)


def check_mode(mode: Mode, app: AppTools | None, messages: Sequence[ChatMessage]) -> None:
    """Refuse the caller's tools, or a history with tool turns, in ``slm`` mode: it has no lead
    to call them (the chat API and batch validation refuse it up front, the run again).

    Raises:
        UnsupportedParameter: naming ``tools`` or ``messages``.
    """
    if mode is not Mode.slm:
        return
    if app is not None:
        raise UnsupportedParameter(
            "tools",
            "specialists answer without tools, and slm mode has no lead to call them; "
            "use understudy-llm, understudy-router or understudy-cascade",
        )
    if has_tool_turns(messages):
        raise UnsupportedParameter(
            "messages", "tool calls and tool results are answered by the lead; slm mode has none"
        )
