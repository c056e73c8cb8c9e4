"""The chat request body, in OpenAI's shape, validated with pydantic at the edge.

Every request parameter is honoured or refused with a 400 naming it: a top-level field this
model does not declare (``web_search_options``, a typo) is refused, never ignored,
because a client that sent it expects it to change the answer. Inside a message, too: a field
other than ``role``, ``content``, ``tool_calls`` and ``tool_call_id`` (a participant's ``name``,
say) is refused unless it is empty — an empty one is what a client echoing an assistant
message back sends (``refusal: null``, ``annotations: []``). ``null`` is accepted
wherever OpenAI accepts it and means the default. The chat API and batch lines validate bodies
with this one model (:func:`parse_chat_request` for batch lines).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from orchestrator.app_tools import AppTools
from orchestrator.options import CallOptions
from serving.protocol.errors import invalid_body
from serving.protocol.response_format import ResponseFormatIn
from serving.protocol.tools import (
    FunctionToolIn,
    NamedToolChoice,
    ToolCallIn,
    check_distinct,
    check_tool_use,
)
from specialists.backend import ChatMessage, FunctionCall
from specialists.sampling import Sampling


def valid_unicode(text: str) -> str:
    """``text``, if every encoder can take it.

    JSON's \\uXXXX escapes can spell a lone surrogate, which Python's json accepts but no
    encoder does: the first upstream call (lead request, tokenizer) would fail with a 500.

    Raises:
        ValueError: it holds an unpaired surrogate.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (it has an unpaired surrogate)") from None
    return text


UnicodeText = Annotated[str, AfterValidator(valid_unicode)]
"""A request's text: a string every encoder can take (:func:`valid_unicode`)."""
Metadata = dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]]
"""OpenAI's ``metadata``: string tags for the lead provider's records (at most 16)."""
Penalty = Annotated[float, Field(ge=-2, le=2)]
Bias = Annotated[float, Field(ge=-100, le=100)]


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class ChatMessageIn(BaseModel):
    """One message of the conversation; content may be a string or OpenAI text parts. An
    assistant message may carry the app's ``tool_calls`` (its content then may be ``null``),
    and a ``tool`` message answers one of them by ``tool_call_id``."""

    model_config = ConfigDict(extra="ignore")  # only empty extras get here
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = Field(None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _nothing_unheard(cls, data: Any) -> Any:
        """A message field nothing would read is refused by name: the lead is called through
        the openai-agents SDK, whose messages carry no participant ``name`` (nor ``audio``,
        ``refusal``), so dropping one would answer a conversation other than the one sent."""
        if isinstance(data, dict):
            unheard = sorted(
                key for key, value in data.items() if key not in cls.model_fields and value
            )
            if unheard:
                names = ", ".join(repr(key) for key in unheard)
                raise ValueError(
                    f"message field {names} cannot be honoured (the models never see it): "
                    "leave it out, or put what it says in the content"
                )
        return data

    @model_validator(mode="after")
    def _tool_turns(self) -> Self:
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages carry 'tool_calls'")
        if self.role == "tool" and self.tool_call_id is None:
            raise ValueError("a tool message needs the 'tool_call_id' it answers")
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(
                "'content' is required, except on an assistant message with tool_calls"
            )
        return self

    @field_validator("content")
    @classmethod
    def _encodable(cls, content: str | list[TextPart] | None) -> str | list[TextPart] | None:
        if content is None:
            return content
        for text in [content] if isinstance(content, str) else [part.text for part in content]:
            valid_unicode(text)
        return content

    def text(self) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        return "".join(part.text for part in self.content)

    def chat_message(self) -> ChatMessage:
        """As the orchestrator takes it (``developer`` is OpenAI's new ``system``)."""
        message: ChatMessage = {
            "role": "system" if self.role == "developer" else self.role,
            "content": self.text(),
        }
        if self.tool_calls:
            message["tool_calls"] = [
                FunctionCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
                for c in self.tool_calls
            ]
        if self.tool_call_id is not None:
            message["tool_call_id"] = self.tool_call_id
        return message


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
    lead_share: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Cascade's cost/quality knob: the target share of requests the lead "
        "answers; the difficulty skip sends the prompts likeliest to be escalated straight to "
        "it. Also as a model name: understudy-cascade-0.3. Default: UNDERSTUDY_CASCADE_LEAD_SHARE.",
    )


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: StrictBool = False


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions``, and the ``body`` of a batch line."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: StrictBool | None = None
    """JSON ``true``, ``false`` or ``null`` only: ``"yes"`` or ``1`` are refused, not guessed
    at."""
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int | None = Field(None, ge=1, le=1, description="Only one choice is generated.")
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: Annotated[list[Annotated[str, Field(min_length=1)]], Field(max_length=4)] | None = None
    """Up to 4 strings; one string alone is accepted as OpenAI accepts it."""
    seed: int | None = Field(None, ge=-(2**63), lt=2**63)
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    logit_bias: dict[Annotated[int, Field(ge=0)], Bias] | None = Field(None, max_length=300)
    """Token id (as a JSON string) → bias, in the answering model's vocabulary."""
    logprobs: StrictBool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    user: str | None = Field(None, max_length=256)
    metadata: Metadata | None = Field(None, max_length=16)
    store: Literal[True] | None = Field(
        None, description="Every run's transcript is kept: ``false`` cannot be honoured."
    )
    understudy: UnderstudyOptions | None = None
    tools: list[FunctionToolIn] | None = Field(None, min_length=1, max_length=128)
    """The app's own function tools, for the lead to call (it runs none of them)."""
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: StrictBool | None = None
    functions: Any = Field(None, description="Refused: OpenAI's legacy form of ``tools``.")
    function_call: Any = Field(None, description="Refused: the legacy ``tool_choice``.")
    response_format: ResponseFormatIn | None = None
    """``json_object`` or ``json_schema``: the answer must be that JSON, or the run fails."""

    @field_validator("messages")
    @classmethod
    def _ends_with_user(cls, messages: list[ChatMessageIn]) -> list[ChatMessageIn]:
        if messages[-1].role not in ("user", "tool"):
            raise ValueError("the last message must come from the user (or be a tool result)")
        return messages

    @field_validator("tools")
    @classmethod
    def _distinct_tools(cls, tools: list[FunctionToolIn] | None) -> list[FunctionToolIn] | None:
        check_distinct([tool.function.name for tool in tools or ()])
        return tools

    @field_validator("tool_choice", "parallel_tool_calls")
    @classmethod
    def _need_tools(cls, value: object, info: ValidationInfo) -> object:
        names = {tool.function.name for tool in info.data.get("tools") or ()}
        chosen = value.function.name if isinstance(value, NamedToolChoice) else None
        check_tool_use(info.field_name or "", value, names, chosen)
        return value

    @field_validator("functions", "function_call")
    @classmethod
    def _legacy(cls, value: object, info: ValidationInfo) -> object:
        if value is not None:
            raise ValueError(
                f"'{info.field_name}' is OpenAI's deprecated form of function calling and is not "
                "supported: send 'tools' and 'tool_choice' instead"
            )
        return value

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop(cls, stop: object) -> object:
        return [stop] if isinstance(stop, str) else stop

    @model_validator(mode="after")
    def _top_logprobs_need_logprobs(self) -> Self:
        if self.top_logprobs and not self.logprobs:
            raise ValueError("'top_logprobs' needs 'logprobs': true")
        return self

    @property
    def answer_tokens(self) -> int | None:
        """The cap on the answer: ``max_completion_tokens``, else the older ``max_tokens``."""
        return self.max_completion_tokens or self.max_tokens

    def call_options(self) -> CallOptions:
        """The request's sampling and attribution, as the orchestrator takes them."""
        sampling = Sampling(
            max_tokens=self.answer_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=tuple(self.stop or ()),
            seed=self.seed,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            logit_bias=tuple((self.logit_bias or {}).items()),
            logprobs=bool(self.logprobs),
            top_logprobs=self.top_logprobs or 0,
            response_format=self.response_format.format() if self.response_format else None,
        )
        return CallOptions(
            sampling,
            user=self.user,
            metadata=self.metadata,
            tools=self.app_tools(),
            lead_share=self.understudy.lead_share if self.understudy else None,
        )

    def app_tools(self) -> AppTools | None:
        """The app's tools and how the lead may call them; ``None`` without ``tools``."""
        if not self.tools:
            return None
        choice = self.tool_choice
        return AppTools(
            tools=tuple(tool.app_tool() for tool in self.tools),
            choice=choice.function.name if isinstance(choice, NamedToolChoice) else choice,
            parallel=self.parallel_tool_calls,
        )

    def chat_messages(self) -> list[ChatMessage]:
        """Messages as the orchestrator takes them."""
        return [m.chat_message() for m in self.messages]


def parse_chat_request(body: Any) -> ChatCompletionRequest:
    """``body`` (parsed JSON) as a chat request.

    Raises:
        ProtocolError: 400 ``invalid_body``, naming each bad field as the chat API does.
    """
    try:
        return ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        raise invalid_body(exc.errors()) from exc
