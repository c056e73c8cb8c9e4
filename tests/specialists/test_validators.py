import pytest

from specialists.catalog import Catalog
from specialists.validators import email_text, extract_python, numeric_answer, python_function


def test_numeric_answer() -> None:
    assert numeric_answer("17 * 24 = 408\nAnswer: 408").ok
    assert numeric_answer("Answer: -3/4").ok
    verdict = numeric_answer("I am not sure.")
    assert not verdict.ok and "no number" in verdict.reason
    assert not numeric_answer("   ").ok


def test_python_function_accepts_fenced_code() -> None:
    answer = "Here:\n```python\ndef rev(s):\n    return s[::-1]\n```\nDone."
    assert extract_python(answer).strip() == "def rev(s):\n    return s[::-1]"
    assert python_function(answer).ok


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("```python\ndef f(:\n```", "does not parse"),
        ("```python\nx = 1\n```", "defines no function"),
    ],
)
def test_python_function_rejects(answer: str, reason: str) -> None:
    verdict = python_function(answer)
    assert not verdict.ok and reason in verdict.reason


def test_email_text() -> None:
    assert email_text("Hi Sam, could I take Friday off? Thanks, Alex").ok
    assert not email_text("Hi Sam").ok
    assert not email_text("```python\nprint('an email that is code')\n```").ok


def test_specialist_validate_uses_its_validator() -> None:
    catalog = Catalog.default()
    assert catalog.get("math").validate("Answer: 5").ok
    assert not catalog.get("code").validate("Answer: 5").ok
