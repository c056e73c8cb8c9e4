"""The chat request body, in OpenAI's shape, validated with pydantic at the edge.

Unknown OpenAI fields are accepted and ignored so existing clients work unchanged, but anything
we would have to misinterpret is refused with a 400 naming the field. The chat API and batch
lines validate bodies with this one model (:func:`parse_chat_request` for batch lines).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator

from serving.protocol.errors import invalid_body
from specialists.backend import ChatMessage


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class ChatMessageIn(BaseModel):
    """One message of the conversation; content may be a string or OpenAI text parts."""

    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    @field_validator("content")
    @classmethod
    def _encodable(cls, content: str | list[TextPart]) -> str | list[TextPart]:
        # JSON's \uXXXX escapes can spell a lone surrogate, which Python's json accepts but no
        # encoder does: the first upstream call (lead request, tokenizer) would fail with a 500.
        texts = [content] if isinstance(content, str) else [part.text for part in content]
        try:
            for text in texts:
                text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text must be valid Unicode (it has an unpaired surrogate)") from None
        return content

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class OnDegraded(StrEnum):
    """What a client gets when a dependency failed and a fallback answered (``degraded``)."""

    degrade = "degrade"
    """The fallback's answer, marked degraded (header and ``understudy.degraded``)."""
    error = "error"
    """An OpenAI-shaped 503 ``degraded`` instead; the run's transcript is still recorded."""


class UnderstudyOptions(BaseModel):
    """Understudy's own request fields, under ``understudy`` (``extra_body`` in OpenAI's SDKs).
    Unknown fields are refused: an option we do not know would otherwise be silently
    dropped."""

    model_config = ConfigDict(extra="forbid")
    on_degraded: OnDegraded | None = None
    """Overrides the server's default (``UNDERSTUDY_API_DEGRADED``)."""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: StrictBool = False


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions``, and the ``body`` of a batch line."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: StrictBool = False
    """JSON ``true`` or ``false`` only: ``"yes"`` or ``1`` are refused, not guessed at."""
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int = Field(1, ge=1, le=1, description="Only one choice is generated.")
    user: str | None = Field(None, max_length=256)
    understudy: UnderstudyOptions | None = None

    @field_validator("messages")
    @classmethod
    def _ends_with_user(cls, messages: list[ChatMessageIn]) -> list[ChatMessageIn]:
        if messages[-1].role != "user":
            raise ValueError("the last message must come from the user")
        return messages

    @property
    def answer_tokens(self) -> int | None:
        """The cap on the answer: ``max_completion_tokens``, else the older ``max_tokens``."""
        return self.max_completion_tokens or self.max_tokens

    def chat_messages(self) -> list[ChatMessage]:
        """Messages as the orchestrator takes them (``developer`` is OpenAI's new ``system``)."""
        return [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
            for m in self.messages
        ]


def parse_chat_request(body: Any) -> ChatCompletionRequest:
    """``body`` (parsed JSON) as a chat request.

    Raises:
        ProtocolError: 400 ``invalid_body``, naming each bad field as the chat API does.
    """
    try:
        return ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        raise invalid_body(exc.errors()) from exc
