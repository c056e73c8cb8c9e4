"""OpenAI's Responses API request (``POST /v1/responses``, and batch lines addressed to it),
validated at the edge and turned into the same call a chat request makes.

What apps use is honoured: ``input`` (:mod:`serving.protocol.responses_input`),
``instructions`` (the conversation's first system message, for this response only: as OpenAI
does, they are not carried to the next one by ``previous_response_id``), function ``tools``,
``tool_choice``, ``parallel_tool_calls``, ``text.format`` (the chat API's structured outputs),
``temperature``, ``top_p``, ``max_output_tokens``, ``metadata``, ``user``, ``store``,
``stream`` and ``previous_response_id`` (whose stored conversation the API looks up). Anything
else — hosted tools (``web_search``, ``file_search``, …), ``reasoning``, ``background``,
``conversation``, a ``truncation`` of ``auto``, an ``include`` entry — is refused with a 400
naming it, never ignored. ``null`` means the default wherever OpenAI accepts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from orchestrator.app_tools import AppTool, AppTools, strict_schema_problem
from orchestrator.modes import Mode
from orchestrator.options import CallOptions
from orchestrator.request import RequestLimits
from serving.protocol.admission import ChatCall, admit_call
from serving.protocol.errors import ProtocolError, invalid_body
from serving.protocol.models import ServedModels
from serving.protocol.requests import Metadata, OnDegraded, UnderstudyOptions, UnicodeText
from serving.protocol.response_format import JsonSchemaSpec
from serving.protocol.responses_input import InputItem, conversation
from serving.protocol.tools import TOOL_NAME, check_distinct, check_tool_use
from specialists.backend import ChatMessage
from specialists.sampling import Sampling
from specialists.structured import ResponseFormat


class ResponsesFunctionTool(BaseModel):
    """A function tool in the Responses shape (flat, unlike chat's ``{"function": …}``).
    ``strict`` defaults to true, as OpenAI's Responses API has it."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["function"]
    name: str = Field(pattern=TOOL_NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    @property
    def is_strict(self) -> bool:
        return self.strict is not False

    @model_validator(mode="after")
    def _strict_schema(self) -> Self:
        problem = strict_schema_problem(self.arguments_schema()) if self.is_strict else None
        if problem is not None:
            raise ValueError(
                f"a strict tool (the default) needs a schema that can be made strict: {problem}; "
                "or send 'strict': false"
            )
        return self

    def arguments_schema(self) -> dict[str, Any]:
        return self.parameters or {"type": "object", "properties": {}}

    def app_tool(self) -> AppTool:
        return AppTool(
            self.name, self.description or "", self.arguments_schema(), strict=self.is_strict
        )

    def echo(self) -> dict[str, Any]:
        """As the response object lists it."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.arguments_schema(),
            "strict": self.is_strict,
        }


class FunctionChoice(BaseModel):
    """``tool_choice`` naming the one function the model must call."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["function"]
    name: str = Field(pattern=TOOL_NAME)


class TextFormatPlain(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]

    def format(self) -> ResponseFormat | None:
        return None


class TextFormatJsonObject(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["json_object"]

    def format(self) -> ResponseFormat | None:
        return ResponseFormat()


class TextFormatJsonSchema(JsonSchemaSpec):
    """``text.format`` of type ``json_schema``: chat's ``json_schema`` spec, flattened."""

    type: Literal["json_schema"]

    def format(self) -> ResponseFormat | None:
        return ResponseFormat.json_schema(
            self.name, self.json_schema, description=self.description, strict=self.strict
        )


TextFormat = Annotated[
    TextFormatPlain | TextFormatJsonObject | TextFormatJsonSchema, Field(discriminator="type")
]


class TextOptions(BaseModel):
    """``text``: the answer's format (``verbosity`` is a reasoning models' option, refused)."""

    model_config = ConfigDict(extra="forbid")
    format: TextFormat | None = None


class ResponsesRequest(BaseModel):
    """``POST /v1/responses``, and the ``body`` of a batch line addressed to it."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=200)
    input: list[InputItem]
    """A string is one user message."""
    instructions: UnicodeText | None = None
    previous_response_id: str | None = Field(None, min_length=1, max_length=200)
    tools: list[ResponsesFunctionTool] | None = Field(None, max_length=128)
    """The app's own function tools, for the lead to call (it runs none of them)."""
    tool_choice: Literal["auto", "none", "required"] | FunctionChoice | None = None
    parallel_tool_calls: StrictBool | None = None
    text: TextOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_output_tokens: int | None = Field(None, ge=1)
    metadata: Metadata | None = Field(None, max_length=16)
    user: str | None = Field(None, max_length=256)
    store: StrictBool | None = None
    """``false``: the response is not kept for ``previous_response_id`` or retrieval (the run's
    transcript is, as every run's)."""
    stream: StrictBool | None = None
    truncation: Literal["disabled"] | None = Field(
        None, description="``auto`` would drop input we keep whole: refused."
    )
    include: list[str] | None = None
    """Extra output data (logprobs, sources…): none is produced, so any entry is refused."""
    understudy: UnderstudyOptions | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _text_is_a_user_message(cls, value: object) -> object:
        if isinstance(value, str):
            return [{"type": "message", "role": "user", "content": value}]
        if value == []:
            raise ValueError("'input' must not be empty")
        return value

    @field_validator("include")
    @classmethod
    def _nothing_to_include(cls, include: list[str] | None) -> list[str] | None:
        if include:
            raise ValueError(
                f"{include[0]!r} cannot be included: Understudy produces no extra output data"
            )
        return include

    @field_validator("tools", mode="before")
    @classmethod
    def _function_tools_only(cls, tools: object) -> object:
        for tool in tools if isinstance(tools, list) else ():
            kind = tool.get("type") if isinstance(tool, dict) else None
            if kind != "function":
                raise ValueError(
                    f"tool type {kind!r} is not supported: only 'function' tools are (hosted "
                    "tools such as web_search or file_search are OpenAI's, not Understudy's)"
                )
        return tools

    @field_validator("tools")
    @classmethod
    def _distinct_tools(
        cls, tools: list[ResponsesFunctionTool] | None
    ) -> list[ResponsesFunctionTool] | None:
        check_distinct([tool.name for tool in tools or ()])
        return tools

    @field_validator("tool_choice", "parallel_tool_calls")
    @classmethod
    def _need_tools(cls, value: object, info: ValidationInfo) -> object:
        names = {tool.name for tool in info.data.get("tools") or ()}
        chosen = value.name if isinstance(value, FunctionChoice) else None
        check_tool_use(info.field_name or "", value, names, chosen)
        return value

    def app_tools(self) -> AppTools | None:
        """The app's tools and how the lead may call them; ``None`` without ``tools``."""
        if not self.tools:
            return None
        choice = self.tool_choice
        return AppTools(
            tools=tuple(tool.app_tool() for tool in self.tools),
            choice=choice.name if isinstance(choice, FunctionChoice) else choice,
            parallel=self.parallel_tool_calls,
        )

    def call_options(self) -> CallOptions:
        """The request's sampling and attribution, as the orchestrator takes them."""
        text_format = self.text.format if self.text else None
        sampling = Sampling(
            max_tokens=self.max_output_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            response_format=text_format.format() if text_format else None,
        )
        return CallOptions(
            sampling,
            user=self.user,
            metadata=self.metadata,
            tools=self.app_tools(),
            lead_share=self.understudy.lead_share if self.understudy else None,
        )

    def echo(self) -> dict[str, Any]:
        """The request's settings as the response object repeats them."""
        text_format = self.text.format if self.text else None
        choice = self.tool_choice
        return {
            "instructions": self.instructions,
            "max_output_tokens": self.max_output_tokens,
            "metadata": self.metadata or {},
            "parallel_tool_calls": self.parallel_tool_calls is not False,
            "previous_response_id": self.previous_response_id,
            "store": self.store is not False,
            "temperature": self.temperature,
            "text": {
                "format": (
                    text_format.model_dump(by_alias=True, exclude_none=True)
                    if text_format
                    else {"type": "text"}
                )
            },
            "tool_choice": choice.model_dump()
            if isinstance(choice, FunctionChoice)
            else choice or "auto",
            "tools": [tool.echo() for tool in self.tools or ()],
            "top_p": self.top_p,
            "truncation": "disabled",
            "user": self.user,
        }


def parse_responses_request(body: Any) -> ResponsesRequest:
    """``body`` (parsed JSON) as a Responses request.

    Raises:
        ProtocolError: 400 ``invalid_body``, naming each bad field as the API does.
    """
    try:
        return ResponsesRequest.model_validate(body)
    except ValidationError as exc:
        raise invalid_body(exc.errors()) from exc


@dataclass(frozen=True, slots=True)
class ResponsesCall:
    """An admitted Responses request: the orchestrator's call, and what the response and its
    stored conversation are made of."""

    call: ChatCall
    request: ResponsesRequest
    conversation: list[ChatMessage]
    """The previous response's conversation (if any) and this input, without the
    instructions: what a next response continues from."""

    @property
    def model(self) -> str:
        return self.request.model

    @property
    def on_degraded(self) -> OnDegraded | None:
        return self.call.on_degraded


_PARAMS = {"messages": "input", "max_tokens": "max_output_tokens"}
"""The chat name of a parameter a refusal may name → its Responses name."""


def admit_responses_request(
    request: ResponsesRequest,
    served: ServedModels,
    limits: RequestLimits,
    *,
    history: list[ChatMessage] | None = None,
    fallback: Mode | None = None,
) -> ResponsesCall:
    """``request`` as the orchestrator's call, continuing ``history`` (the conversation of its
    ``previous_response_id``), once its model and size are acceptable.

    Raises:
        ProtocolError: as :func:`~serving.protocol.admission.admit_call`, naming the
            Responses parameters (``input``, ``max_output_tokens``).
    """
    talk = [*(history or ()), *conversation(request.input)]
    instructions: list[ChatMessage] = (
        [{"role": "system", "content": request.instructions}] if request.instructions else []
    )
    options = request.understudy
    try:
        call = admit_call(
            request.model,
            [*instructions, *talk],
            request.call_options(),
            options.on_degraded if options else None,
            served,
            limits,
            fallback=fallback,
        )
    except ProtocolError as exc:
        exc.param = _PARAMS.get(exc.param or "", exc.param)
        raise
    return ResponsesCall(call, request, talk)
