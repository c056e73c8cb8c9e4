"""Whether a specialist's answer agrees with the lead's answer to the same request.

One small judge per kind of specialist, chosen by the specialist's validator, each built on the
evaluation scorers (the lead's answer stands where a data set's reference would):

- ``numeric_answer`` (math): the final numbers are equal (:func:`score_numeric`); when the
  lead's answer has no number, Math-Verify compares the two (:func:`math_equivalent`);
- ``python_function`` (code): where the request carries its own ``assert`` tests (MBPP's
  shape), the specialist's program must pass them in the sandbox (:func:`score_mbpp`); else
  its extracted code must equal the lead's, once comments and blank lines are dropped;
- anything else (``email_text``, learned specialists' text): ROUGE-L against the lead's
  answer (:func:`rouge_l`) at or above a floor.

Judges block (the sandbox, Math-Verify): async callers run them in a thread.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from evals.samples import Score
from evals.scorers import (
    extract_code,
    final_number,
    math_equivalent,
    rouge_l,
    score_mbpp,
    score_numeric,
)

Scorer = Callable[[str, str, str], Score]
"""(request, specialist's answer, lead's answer) → how far they agree, in [0, 1]."""

_ASSERT = re.compile(r"^\s*assert\b.*$", re.M)


@dataclass(frozen=True, slots=True)
class AgreementJudge:
    """A scorer, and the score at which the two answers count as agreeing."""

    name: str
    score: Scorer
    agrees_at: float = 1.0

    def judge(self, request: str, answer: str, lead_answer: str) -> tuple[bool, Score]:
        """Whether ``answer`` agrees with ``lead_answer``, and the score that says so."""
        score = self.score(request, answer, lead_answer)
        return score.value >= self.agrees_at, score


def math_agreement(_request: str, answer: str, lead_answer: str) -> Score:
    """1 when the specialist's final answer equals the lead's."""
    found = final_number(lead_answer)
    if found is not None:
        value, _how = found
        return score_numeric(answer, str(value))
    equal, details = math_equivalent(answer, lead_answer.strip())
    return Score(float(equal), details)


def code_agreement(request: str, answer: str, lead_answer: str) -> Score:
    """The request's own tests, when it has some; else the same code as the lead's."""
    tests = _ASSERT.findall(request)
    if tests:
        return score_mbpp(answer, tests=[line.strip() for line in tests])
    same = _normalized(extract_code(answer)) == _normalized(extract_code(lead_answer))
    return Score(float(same), {"compared": "normalized code"})


def text_agreement(_request: str, answer: str, lead_answer: str) -> Score:
    """ROUGE-L F1 of the specialist's answer against the lead's."""
    value = rouge_l(answer, [lead_answer])
    return Score(value, {"rouge_l": round(value, 4)})


def judge_for(validator: str, *, min_rouge: float) -> AgreementJudge:
    """The judge of a specialist with ``validator``."""
    if validator == "numeric_answer":
        return AgreementJudge("math", math_agreement)
    if validator == "python_function":
        return AgreementJudge("code", code_agreement)
    return AgreementJudge("text", text_agreement, agrees_at=min_rouge)


def _normalized(code: str) -> list[str]:
    """Code lines without comments, trailing space and blank lines."""
    lines = (re.sub(r"#.*$", "", line).rstrip() for line in code.splitlines())
    return [line for line in lines if line.strip()]
