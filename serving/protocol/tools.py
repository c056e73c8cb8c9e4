"""The app's own function tools in OpenAI's request shapes: ``tools``, ``tool_choice``, and the
tool turns of a history (an assistant's ``tool_calls``, a ``tool`` result).

Only function tools exist here; any other tool type is refused by pydantic, naming it. The
orchestrator takes them as :class:`~orchestrator.app_tools.AppTools`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.app_tools import AppTool, strict_schema_problem

TOOL_NAME = r"^[a-zA-Z0-9_-]{1,64}$"
"""OpenAI's rule for function names."""


def check_distinct(names: Sequence[str]) -> None:
    """Raises ValueError: two of the request's tools share a name."""
    if len(set(names)) != len(names):
        raise ValueError("tool names must be distinct")


def check_tool_use(field: str, value: object, names: Collection[str], chosen: str | None) -> None:
    """Refuse ``tool_choice`` or ``parallel_tool_calls`` (``field``) without tools, and a
    ``tool_choice`` naming (``chosen``) a function not among the tools' ``names``.

    Raises:
        ValueError: saying which.
    """
    if value is not None and not names:
        raise ValueError(f"'{field}' is only allowed when 'tools' are given")
    if chosen is not None and chosen not in names:
        raise ValueError(f"tool_choice names {chosen!r}, which is not in 'tools'")


class FunctionDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=TOOL_NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    """The arguments' JSON schema; none: the function takes no arguments."""
    strict: bool | None = None

    @model_validator(mode="after")
    def _strict_schema(self) -> Self:
        problem = strict_schema_problem(self.parameters or {}) if self.strict else None
        if problem is not None:
            raise ValueError(f"'strict' needs a schema that can be made strict: {problem}")
        return self


class FunctionToolIn(BaseModel):
    """One entry of ``tools``."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["function"]
    function: FunctionDefinition

    def app_tool(self) -> AppTool:
        function = self.function
        return AppTool(
            name=function.name,
            description=function.description or "",
            parameters=function.parameters or {"type": "object", "properties": {}},
            strict=bool(function.strict),
        )


class FunctionName(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=TOOL_NAME)


class NamedToolChoice(BaseModel):
    """``tool_choice`` naming the one function the model must call."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["function"]
    function: FunctionName


class FunctionCallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    arguments: str
    """A JSON string, as the model wrote it."""
    parsed_arguments: Any = None
    """The ``openai`` client's own parse of ``arguments``, left in a streamed message an app
    echoes back; ``arguments`` is what the model wrote, and what is sent on."""


class ToolCallIn(BaseModel):
    """One entry of an assistant message's ``tool_calls``."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    type: Literal["function"]
    function: FunctionCallIn
    index: int | None = None
    """A streamed call's position, which the ``openai`` client's ``get_final_completion()``
    leaves in the message an app echoes back; the list's order already says it."""
