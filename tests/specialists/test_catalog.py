from pathlib import Path

import pytest

from specialists import Catalog, ConfigurationError, UnknownSpecialistError
from specialists.catalog import GenerationParams, Specialist


def test_default_catalog_has_the_three_specialists_with_validators() -> None:
    catalog = Catalog.default()
    assert catalog.names == ["math", "email", "code"]
    assert catalog.get("math").validator == "numeric_answer"
    assert catalog.get("code").validator == "python_function"
    assert all(s.description and s.system_prompt and s.examples for s in catalog)


def test_unknown_specialist_lists_known_ones() -> None:
    with pytest.raises(UnknownSpecialistError) as info:
        Catalog.default().get("poetry")
    assert "poetry" in str(info.value)
    assert "code, email, math" in str(info.value)


def test_overrides_replace_fields_and_merge_generation() -> None:
    catalog = Catalog.default().with_overrides(
        {
            "math": {
                "confidence_threshold": 0.9,
                "adapter": "~/a/math",
                "generation": {"max_tokens": 64},
            }
        }
    )
    math = catalog.get("math")
    assert math.confidence_threshold == 0.9
    assert math.adapter == Path("~/a/math").expanduser()
    assert math.generation == GenerationParams(max_tokens=64, temperature=0.0)
    assert Catalog.default().get("math").adapter is None  # the defaults are untouched


def test_override_can_add_a_specialist() -> None:
    catalog = Catalog.default().with_overrides(
        {"dates": {"description": "Normalises dates", "system_prompt": "Output ISO 8601."}}
    )
    assert catalog.names[-1] == "dates"
    assert catalog.get("dates").validator == "nonempty"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"validator": "nope"}, "unknown validator 'nope'"),
        ({"confidence_threshold": 1.5}, "must be in [0, 1]"),
        ({"colour": "red"}, "invalid override for specialist 'math'"),
        ({"generation": {"max_tokens": 0}}, "max_tokens must be ≥ 1"),
        ({"adapter": "/a", "version": "v9"}, "'version' is the registry's"),
    ],
)
def test_bad_overrides_are_configuration_errors(fields: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Catalog.default().with_overrides({"math": fields})


def test_names_must_be_identifiers_and_unique() -> None:
    with pytest.raises(ConfigurationError, match="identifier"):
        Specialist(name="bad name", description="d", system_prompt="p")
    spec = Specialist(name="x", description="d", system_prompt="p")
    with pytest.raises(ConfigurationError, match="defined twice"):
        Catalog([spec, spec])
