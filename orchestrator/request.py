"""What a run accepts: a well-formed chat history within :class:`RequestLimits`.

The limits are one set of numbers, built from settings at the edge
(``UNDERSTUDY_API_MAX_MESSAGES``, ``_MAX_REQUEST_CHARS``, ``_MAX_TOKENS_LIMIT``) and checked by
:func:`admit` — by the orchestrator for every run, whoever calls it, and by the OpenAI protocol
layer before a chat request or a batch line is accepted (``serving.protocol``), so the API and
batch validation refuse the same requests with the same words. The HTTP server's body-size limit
is a transport limit on bytes, checked before a request is even parsed; these are limits on the
request's content.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from orchestrator.modes import Mode
from specialists.backend import ChatMessage
from specialists.errors import UnderstudyError


class InvalidRequest(UnderstudyError):
    """The request itself is malformed (empty, wrong roles, too large)."""


class UnsupportedParameter(InvalidRequest):
    """The request sets a parameter this run cannot honour the way it was asked.

    Args:
        param: The request field, by its OpenAI name.
        reason: Why, and what would work instead.
    """

    def __init__(self, param: str, reason: str) -> None:
        self.param = param
        super().__init__(f"{param!r} is not supported here: {reason}")


class Limit(StrEnum):
    """The limit a request is over."""

    messages = "messages"
    characters = "characters"
    max_tokens = "max_tokens"


class OverLimit(InvalidRequest):
    """The request is well formed but over one of the :class:`RequestLimits`.

    Args:
        limit: Which limit.
        message: The request's figure and the limit, for people.
    """

    def __init__(self, limit: Limit, message: str) -> None:
        self.limit = limit
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """How large a request may be; the defaults are the settings' defaults."""

    max_messages: int = 100
    """Most messages in one request."""
    max_request_chars: int = 200_000
    """Most characters of message content in one request, all messages together."""
    max_tokens: int = 4096
    """Largest answer a request may ask for (``max_tokens``)."""


def admit(
    request: str | Sequence[ChatMessage], limits: RequestLimits, *, max_tokens: int | None = None
) -> list[ChatMessage]:
    """``request`` as the list of messages a run takes, once it is known to be acceptable.

    Raises:
        OverLimit: The request has too many messages or characters, or asks for more tokens
            than ``limits`` allow.
        InvalidRequest: It has no messages, a role other than system/user/assistant/tool,
            content that is not text, a tool result without its call's id, or does not end
            with a non-empty user message or a tool result.
    """
    messages: list[ChatMessage] = (
        [{"role": "user", "content": request}] if isinstance(request, str) else list(request)
    )
    if len(messages) > limits.max_messages:
        raise OverLimit(
            Limit.messages, f"{len(messages)} messages; the limit is {limits.max_messages}"
        )
    if not messages:
        raise InvalidRequest("the request has no messages")
    for index, message in enumerate(messages):
        if message.get("role") not in ("system", "user", "assistant", "tool"):
            raise InvalidRequest(f"message {index} has role {message.get('role')!r}")
        if not isinstance(message.get("content"), str):
            raise InvalidRequest(f"message {index} has no text content")
        if message["role"] == "tool" and not message.get("tool_call_id"):
            raise InvalidRequest(f"message {index} (a tool result) has no tool_call_id")
    characters = sum(len(message["content"]) for message in messages)
    if characters > limits.max_request_chars:
        raise OverLimit(
            Limit.characters,
            f"the messages hold {characters} characters; the limit is {limits.max_request_chars}",
        )
    if max_tokens is not None and max_tokens > limits.max_tokens:
        raise OverLimit(
            Limit.max_tokens, f"max_tokens {max_tokens} is above the limit of {limits.max_tokens}"
        )
    last = messages[-1]
    if last["role"] == "tool":  # the app answers its tool calls; the lead continues
        return messages
    if last["role"] != "user" or not last["content"].strip():
        raise InvalidRequest("the last message must be a non-empty user message or a tool result")
    return messages


def parse_mode(mode: Mode | str) -> Mode:
    """``mode`` as a :class:`Mode`.

    Raises:
        InvalidRequest: It names no mode.
    """
    try:
        return Mode(mode)
    except ValueError:
        raise InvalidRequest(
            f"unknown mode {mode!r}; modes: {', '.join(m.value for m in Mode)}"
        ) from None
