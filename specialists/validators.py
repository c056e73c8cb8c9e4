"""Output validators: cheap, deterministic checks a specialist's answer must pass.

A validator is the second half of the cascade's gate (the first is confidence): a confident answer
that is not even well-formed is still escalated. Each validator takes the answer text and returns a
:class:`Validation`; they are looked up by name so the catalog stays plain data.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass

from specialists.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class Validation:
    """The verdict of a validator."""

    ok: bool
    """Whether the answer is well-formed for its specialist."""
    reason: str = ""
    """Why it failed (empty when ``ok``); shown to the lead when it escalates."""


Validator = Callable[[str], Validation]

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")
_CODE_BLOCK = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)


def extract_python(text: str) -> str:
    """The Python code in an answer: the fenced blocks joined, else the whole text."""
    blocks = _CODE_BLOCK.findall(text)
    return "\n\n".join(blocks) if blocks else text


def nonempty(text: str) -> Validation:
    """Any answer with visible content."""
    return Validation(True) if text.strip() else Validation(False, "the answer is empty")


def numeric_answer(text: str) -> Validation:
    """A math answer must state at least one number."""
    if not text.strip():
        return Validation(False, "the answer is empty")
    if not _NUMBER.search(text):
        return Validation(False, "the answer contains no number")
    return Validation(True)


def python_function(text: str) -> Validation:
    """A code answer must parse as Python and define at least one function."""
    code = extract_python(text)
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return Validation(False, f"the code does not parse: {exc.msg} (line {exc.lineno})")
    if not any(isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) for node in ast.walk(tree)):
        return Validation(False, "the code defines no function")
    return Validation(True)


def email_text(text: str, *, min_words: int = 5) -> Validation:
    """An email answer must be prose of some length, not a fragment or a code block."""
    words = text.split()
    if len(words) < min_words:
        return Validation(False, f"the email has {len(words)} words; expected at least {min_words}")
    if text.lstrip().startswith("```"):
        return Validation(False, "the email is a code block")
    return Validation(True)


VALIDATORS: dict[str, Validator] = {
    "nonempty": nonempty,
    "numeric_answer": numeric_answer,
    "python_function": python_function,
    "email_text": email_text,
}
"""Validators by the name a catalog entry uses."""


def get_validator(name: str) -> Validator:
    """The validator registered under ``name``; a clear error lists the known names."""
    try:
        return VALIDATORS[name]
    except KeyError:
        known = ", ".join(sorted(VALIDATORS))
        raise ConfigurationError(f"unknown validator {name!r}; known validators: {known}") from None
