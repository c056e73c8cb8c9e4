"""Numeric exact match on a final answer (GSM8K).

A model's reply is chatty: it reasons, then states the result in one of a few ways. The final
number is taken from the first of these that is present, in this order, because each is a more
deliberate statement of the answer than the next:

1. ``#### N`` (GSM8K's own format; the last one);
2. ``\\boxed{N}`` (the last one);
3. "the (final) answer is N" / "Answer: N" (the last such phrase);
4. the last number anywhere in the text.

Numbers compare exactly, as fractions (no float rounding); thousands separators, currency signs
and units around them are ignored, so ``1,000``, ``$1000.00`` and ``1000 dollars`` are equal.
"""

from __future__ import annotations

import re
from fractions import Fraction

from evals.samples import NO_ANSWER, Score

_NUMBER = r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?"
"""An integer (``1,000`` grouping allowed), decimal or plain fraction."""
_NUMBER_RE = re.compile(_NUMBER)
_MARKERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("####", re.compile(r"####\s*\$?\s*(" + _NUMBER + ")")),
    ("boxed", re.compile(r"\\boxed\{\s*(?:\\\$)?\s*(" + _NUMBER + r")[^}]*\}")),
    (
        "answer is",
        re.compile(
            r"answer\**(?:\s+is\s*:?|\s*[:=])[\s*]*(?:\\?\$)?\s*(" + _NUMBER + ")",
            re.IGNORECASE,
        ),
    ),
)


def final_number(text: str) -> tuple[Fraction, str] | None:
    """The final numeric answer in ``text`` and how it was found, or ``None`` if it has none."""
    for how, pattern in _MARKERS:
        matches = pattern.findall(text)
        if matches:
            return to_fraction(matches[-1]), how
    numbers = _NUMBER_RE.findall(text)
    return (to_fraction(numbers[-1]), "last number") if numbers else None


def to_fraction(number: str) -> Fraction:
    """``"1,234.50"`` → ``Fraction(2469, 2)``; ``"3/4"`` → ``Fraction(3, 4)``."""
    cleaned = re.sub(r"[,\s]", "", number)
    if "/" in cleaned:
        numerator, denominator = cleaned.split("/")
        return Fraction(numerator) / Fraction(denominator)
    return Fraction(cleaned)


def score_numeric(answer: str | None, reference: str) -> Score:
    """1 when the final number of ``answer`` equals ``reference`` (a number as text), else 0."""
    if answer is None:
        return NO_ANSWER
    expected = to_fraction(reference)
    found = final_number(answer)
    if found is None:
        return Score(0.0, {"extracted": None, "expected": reference, "error": "no number"})
    value, how = found
    return Score(
        float(value == expected),
        {"extracted": _format(value), "found_by": how, "expected": reference},
    )


def _format(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    decimal = float(value)
    return str(decimal) if Fraction(decimal) == value else f"{value.numerator}/{value.denominator}"
