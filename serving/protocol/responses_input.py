"""The ``input`` of a Responses API request: a string, or a list of items, as the conversation
the orchestrator takes (chat messages).

Three kinds of item are honoured — a ``message`` (roles ``user``, ``system``, ``developer``,
``assistant``; content a string or ``input_text`` / ``output_text`` parts), a ``function_call``
the lead made earlier (sent back by the client), and a ``function_call_output`` answering one —
and any other kind (``input_image``, ``reasoning``, ``item_reference``, …) is refused naming
its type. The ``id``, ``status``, ``annotations`` and ``logprobs`` of an item the client copied
from an earlier response are accepted and mean nothing here: they describe that response, not
this request.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from serving.protocol.requests import UnicodeText
from specialists.backend import ChatMessage, FunctionCall

ItemStatus = Literal["in_progress", "completed", "incomplete"]


class InputText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["input_text"]
    text: UnicodeText


class OutputText(BaseModel):
    """An assistant's text, as an earlier response gave it."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["output_text"]
    text: UnicodeText
    annotations: list[Any] | None = None
    logprobs: list[Any] | None = None


def _part_type(part: Any) -> str | None:
    return part.get("type") if isinstance(part, dict) else None


ContentPart = Annotated[
    Annotated[InputText, Tag("input_text")] | Annotated[OutputText, Tag("output_text")],
    Discriminator(_part_type),
]
"""Text parts only: images, files and audio are refused naming their type."""


class MessageItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: UnicodeText | list[ContentPart]
    id: str | None = None
    status: ItemStatus | None = None
    phase: Literal["commentary", "final_answer"] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class FunctionCallItem(BaseModel):
    """A call of one of the app's tools, as an earlier response returned it."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str
    id: str | None = None
    status: ItemStatus | None = None


class FunctionCallOutputItem(BaseModel):
    """The app's result of one of those calls."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: UnicodeText | list[InputText]
    id: str | None = None
    status: ItemStatus | None = None

    def text(self) -> str:
        if isinstance(self.output, str):
            return self.output
        return "".join(part.text for part in self.output)


def _item_type(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    return item.get("type", "message")  # an "easy" message leaves its type out


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")],
    Discriminator(
        _item_type,
        custom_error_type="unsupported_item",
        custom_error_message=(
            "only 'message', 'function_call' and 'function_call_output' items are supported"
        ),
    ),
]


def conversation(items: list[InputItem]) -> list[ChatMessage]:
    """``input`` as chat messages: ``developer`` is ``system``; consecutive function calls are
    one assistant turn with ``tool_calls``, and each output a ``tool`` message."""
    messages: list[ChatMessage] = []
    for item in items:
        if isinstance(item, MessageItem):
            role = "system" if item.role == "developer" else item.role
            messages.append({"role": role, "content": item.text()})
        elif isinstance(item, FunctionCallItem):
            call = FunctionCall(id=item.call_id, name=item.name, arguments=item.arguments)
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
        else:
            messages.append({"role": "tool", "tool_call_id": item.call_id, "content": item.text()})
    return messages
