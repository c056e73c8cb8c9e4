"""Request and response bodies of the chat API, in OpenAI's shapes plus an ``understudy`` block.

Requests are validated here (pydantic at the edge); unknown OpenAI fields are accepted and
ignored so existing clients work unchanged, but anything we would have to misinterpret is
refused with a 400 naming the field.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


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


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions``."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int = Field(1, ge=1, le=1, description="Only one choice is generated.")
    user: str | None = Field(None, max_length=256)

    @field_validator("messages")
    @classmethod
    def _ends_with_user(cls, messages: list[ChatMessageIn]) -> list[ChatMessageIn]:
        if messages[-1].role != "user":
            raise ValueError("the last message must come from the user")
        return messages

    def chat_messages(self) -> list[dict[str, str]]:
        """Messages as the orchestrator takes them (``developer`` is OpenAI's new ``system``)."""
        return [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
            for m in self.messages
        ]


class FeedbackRequest(BaseModel):
    """``POST /v1/feedback``: a score for a run (from the ``understudy.run_id`` of a reply)."""

    model_config = ConfigDict(extra="forbid")
    run_id: str = Field(min_length=1, max_length=64)
    score: float = Field(ge=-1.0, le=1.0, description="-1 (bad) to 1 (good).")
    comment: str | None = Field(None, max_length=4000)


def understudy_block(result: Any) -> dict[str, Any]:
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
    }


def usage_block(result: Any) -> dict[str, int]:
    prompt = result.lead_input_tokens + result.slm_prompt_tokens
    completion = result.lead_output_tokens + result.slm_completion_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
