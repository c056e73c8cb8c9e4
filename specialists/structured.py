"""Structured outputs: the JSON shape a caller asked the answer to have (:class:`ResponseFormat`).

OpenAI's ``response_format`` (``json_object``, ``json_schema``) travels with a request's
:class:`~specialists.sampling.Sampling`: a backend that can constrain decoding to it does (vLLM's
structured outputs); every answer, whoever gave it, is then checked against it here
(:meth:`ResponseFormat.check`), because a backend that cannot constrain decoding (the local one)
and a lead that ignores the instruction would otherwise hand the caller text its parser rejects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from jsonschema import SchemaError, validators
from jsonschema.exceptions import best_match
from referencing.exceptions import Unresolvable

from specialists.validators import Validation

MAX_SCHEMA_CHARS = 64_000
"""Largest schema accepted, as compact JSON: it is checked against every answer and sent with
every lead and specialist call."""


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """A JSON answer: any JSON object, or (with a schema) one that matches a JSON Schema.

    Hashable, so a :class:`~specialists.sampling.Sampling` carrying it still is: the schema is
    kept as its compact JSON text.
    """

    schema_json: str | None = None
    """The JSON Schema the answer must match, as JSON text; ``None``: any JSON object."""
    name: str = "response"
    description: str | None = None
    strict: bool | None = None
    """OpenAI's ``strict`` flag, passed on to the lead (the check here is always strict)."""

    @classmethod
    def json_schema(
        cls,
        name: str,
        schema: dict[str, Any],
        *,
        description: str | None = None,
        strict: bool | None = None,
    ) -> ResponseFormat:
        return cls(_compact(schema), name, description, strict)

    @property
    def schema(self) -> dict[str, Any] | None:
        return None if self.schema_json is None else json.loads(self.schema_json)

    def openai(self) -> dict[str, Any]:
        """This format as OpenAI's ``response_format`` field (what the lead and vLLM take)."""
        if self.schema_json is None:
            return {"type": "json_object"}
        spec: dict[str, Any] = {"name": self.name, "schema": self.schema}
        if self.description is not None:
            spec["description"] = self.description
        if self.strict is not None:
            spec["strict"] = self.strict
        return {"type": "json_schema", "json_schema": spec}

    def check(self, text: str) -> Validation:
        """Whether ``text`` is a JSON value of this format; the reason, for people, if not."""
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            return Validation(False, f"the answer is not JSON ({exc.msg} at character {exc.pos})")
        schema = self.schema
        if schema is None:
            if isinstance(value, dict):
                return Validation(True)
            return Validation(False, "the answer is JSON but not a JSON object")
        try:
            error = best_match(validators.validator_for(schema)(schema).iter_errors(value))
        except Unresolvable as exc:  # a $ref to elsewhere: nothing is fetched
            return Validation(False, f"the schema has a reference that cannot be resolved: {exc}")
        if error is None:
            return Validation(True)
        where = error.json_path
        return Validation(
            False, f"the answer does not match schema {self.name!r} at {where}: {error.message}"
        )


def schema_problem(schema: dict[str, Any]) -> str | None:
    """Why ``schema`` cannot be a response format's schema (too large, not a valid JSON
    Schema under its own ``$schema`` draft, the latest by default); ``None`` when it can."""
    size = len(_compact(schema))
    if size > MAX_SCHEMA_CHARS:
        return f"the schema is {size} characters as JSON; at most {MAX_SCHEMA_CHARS} are accepted"
    try:
        validators.validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        return f"not a valid JSON Schema: {exc.message}"
    return None


def _compact(schema: dict[str, Any]) -> str:
    return json.dumps(schema, separators=(",", ":"))  # key order kept: it orders answers
