"""``ResponseFormat``: what it sends upstream, and its check of an answer against it."""

import pytest

from specialists.sampling import Sampling
from specialists.structured import MAX_SCHEMA_CHARS, ResponseFormat, schema_problem

POINT = {
    "type": "object",
    "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
    "required": ["x", "y"],
}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"x": 1, "y": 2}', ""),
        ('{"x": 1}', "the answer does not match schema 'Point' at $: 'y' is a required property"),
        ('{"x": 1, "y": "2"}', "at $.y: '2' is not of type 'integer'"),
        ("x = 1, y = 2", "the answer is not JSON (Expecting value at character 0)"),
        ('```json\n{"x": 1, "y": 2}\n```', "the answer is not JSON"),
    ],
)
def test_an_answer_is_checked_against_the_schema(text: str, reason: str) -> None:
    verdict = ResponseFormat.json_schema("Point", POINT).check(text)
    assert verdict.ok is (reason == "")
    assert reason in verdict.reason


@pytest.mark.parametrize(("text", "ok"), [('{"a": [1]}', True), ("[1, 2]", False), ("3", False)])
def test_json_object_takes_any_object_and_nothing_else(text: str, ok: bool) -> None:
    assert ResponseFormat().check(text).ok is ok


def test_a_reference_that_cannot_be_resolved_fails_the_answer_not_the_server() -> None:
    fmt = ResponseFormat.json_schema("Remote", {"$ref": "https://example.com/schema.json"})
    verdict = fmt.check("{}")
    assert not verdict.ok and "cannot be resolved" in verdict.reason


def test_openai_shape_keeps_the_schema_and_its_property_order() -> None:
    schema = {"type": "object", "properties": {"b": {}, "a": {}}}
    fmt = ResponseFormat.json_schema("Doc", schema, description="a doc", strict=False)
    sent = fmt.openai()
    assert sent == {
        "type": "json_schema",
        "json_schema": {"name": "Doc", "schema": schema, "description": "a doc", "strict": False},
    }
    assert list(sent["json_schema"]["schema"]["properties"]) == ["b", "a"]
    assert ResponseFormat().openai() == {"type": "json_object"}


def test_schema_problems_are_named() -> None:
    assert schema_problem(POINT) is None
    assert "not a valid JSON Schema" in (schema_problem({"type": "tuple"}) or "")
    huge = {"enum": ["x" * 100] * (MAX_SCHEMA_CHARS // 100)}
    assert f"at most {MAX_SCHEMA_CHARS}" in (schema_problem(huge) or "")


def test_every_backend_honours_it_so_none_refuses_it() -> None:
    """The local backend cannot decode by a schema, but its answers are checked: the format is
    never an unsupported field, and it is not passed to a backend that does not take it."""
    sampling = Sampling(temperature=0.5, response_format=ResponseFormat())
    assert sampling.unsupported(frozenset({"temperature"})) == ()
    assert sampling.restricted_to(frozenset({"temperature"})).response_format is None
    assert sampling.restricted_to(frozenset({"response_format"})).response_format is not None
