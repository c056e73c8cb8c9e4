"""OpenAI's ``response_format`` request field, validated at the edge.

``text`` is the default (no constraint); ``json_object`` asks for any JSON object;
``json_schema`` for JSON matching the caller's schema, which must itself be a JSON Schema (of its
``$schema`` draft) and bounded in size, so a malformed one is a 400 naming ``response_format``,
never a failure halfway through a run. What reaches the orchestrator is a
:class:`~specialists.structured.ResponseFormat` (``None`` for ``text``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from specialists.structured import ResponseFormat, schema_problem


class JsonSchemaSpec(BaseModel):
    """``response_format.json_schema``: the schema and OpenAI's name for it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = Field(None, max_length=2000)
    json_schema: dict[str, Any] = Field(alias="schema")
    strict: StrictBool | None = None

    @field_validator("json_schema")
    @classmethod
    def _is_json_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        problem = schema_problem(schema)
        if problem is not None:
            raise ValueError(problem)
        return schema


class TextFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]

    def format(self) -> ResponseFormat | None:
        return None


class JsonObjectFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["json_object"]

    def format(self) -> ResponseFormat | None:
        return ResponseFormat()


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec

    def format(self) -> ResponseFormat | None:
        spec = self.json_schema
        return ResponseFormat.json_schema(
            spec.name, spec.json_schema, description=spec.description, strict=spec.strict
        )


ResponseFormatIn = Annotated[
    TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")
]
"""The request field's type: one of OpenAI's three formats, told apart by ``type``."""
