"""Answer equivalence for competition math (MATH-500), with Hugging Face's Math-Verify.

Math-Verify finds the answer in a chatty reply (the last ``\\boxed{}``, else the final LaTeX or
plain expression), normalises LaTeX (``\\dfrac``, ``\\left(``, ``^\\circ``, ``\\text{ cm}``,
``1,\\!000``, …) and compares with sympy: numerically (``\\frac12`` = ``0.5``), symbolically
(``(x+1)^2`` = ``x^2+2x+1``), and as sets, intervals, tuples and matrices (with open and closed
ends kept apart). It is imported on first use: it is an optional dependency (``[eval]``), and
its LaTeX parser takes a second to load.

Its timeouts use ``signal.alarm``, which only the main thread may set; elsewhere the check runs
without them (the parse of one short answer takes milliseconds).
"""

from __future__ import annotations

import functools
import threading
from types import ModuleType
from typing import Any

from evals.errors import MissingExtraError
from evals.samples import NO_ANSWER, Score

TIMEOUT_S = 5
"""Per parse and per comparison, where a timeout can be set (the main thread)."""


@functools.cache
def _math_verify() -> ModuleType:
    try:
        import math_verify
    except ImportError as exc:
        raise MissingExtraError("math-verify", "scoring math answers") from exc
    return math_verify


def math_equivalent(answer: str, reference: str) -> tuple[bool, dict[str, Any]]:
    """Whether the final answer in ``answer`` equals ``reference`` (a bare LaTeX answer, as in
    MATH's ``answer`` field), with what was extracted from each."""
    mv = _math_verify()
    timeout = TIMEOUT_S if threading.current_thread() is threading.main_thread() else None
    gold = mv.parse(
        f"${reference}$",
        extraction_config=[mv.LatexExtractionConfig(), mv.ExprExtractionConfig()],
        parsing_timeout=timeout,
    )
    predicted = mv.parse(answer, parsing_timeout=timeout)
    equal = bool(gold and predicted and mv.verify(gold, predicted, timeout_seconds=timeout))
    return equal, {"extracted": _shown(predicted), "expected": reference}


def score_math(answer: str | None, reference: str) -> Score:
    """1 when ``answer``'s final answer is mathematically equal to ``reference``, else 0."""
    if answer is None:
        return NO_ANSWER
    equal, details = math_equivalent(answer, reference)
    return Score(float(equal), details)


def _shown(parsed: list[Any]) -> str | None:
    """Math-Verify returns [sympy object, the matched text]; the text is what a reader wants."""
    return str(parsed[-1]) if parsed else None
