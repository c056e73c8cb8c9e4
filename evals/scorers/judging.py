"""Single-answer grading by an LLM judge, with MT-Bench's official prompts (FastChat).

The prompts come from FastChat's ``judge_prompts.jsonl`` (``single-v1`` for open questions,
``single-math-v1`` with a reference answer for math, reasoning and coding). The judge is asked
exactly as FastChat asks it — its system prompt, then the filled template as the user turn — and
its rating is read exactly as FastChat reads it: the first ``[[N]]``, else the first ``[N]``;
none means no rating (FastChat records -1 and leaves it out of averages).
"""

from __future__ import annotations

import ast
import re
from dataclasses import asdict, dataclass
from typing import Any

from evals.judge import Judge
from evals.samples import Score

NEEDS_REFERENCE = frozenset({"math", "reasoning", "coding"})
"""MT-Bench categories judged against a reference answer (FastChat's ``NEED_REF_CATS``)."""

_RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")
_RATING_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")


@dataclass(frozen=True, slots=True)
class JudgePrompt:
    """One of FastChat's single-answer judge prompts."""

    name: str
    system_prompt: str
    prompt_template: str
    """Fields: ``{question}``, ``{answer}`` and, for reference-based prompts, ``{ref_answer_1}``."""

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> JudgePrompt:
        """From a line of ``judge_prompts.jsonl`` (or :meth:`as_dict`)."""
        return cls(row["name"], row["system_prompt"], row["prompt_template"])

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def judge_messages(
    prompt: JudgePrompt, *, question: str, answer: str, reference: str | None = None
) -> list[dict[str, str]]:
    """The chat messages FastChat sends the judge for one answer."""
    fields = {"question": question, "answer": answer}
    if reference is not None:
        fields["ref_answer_1"] = reference
    return [
        {"role": "system", "content": prompt.system_prompt},
        {"role": "user", "content": prompt.prompt_template.format(**fields)},
    ]


def parse_rating(judgment: str) -> float | None:
    """The judge's rating (``Rating: [[8]]`` → 8.0), or ``None`` when it gave none."""
    match = _RATING.search(judgment) or _RATING_BACKUP.search(judgment)
    return float(ast.literal_eval(match.group(1))) if match else None


async def grade(
    judge: Judge, prompt: JudgePrompt, *, question: str, answer: str, reference: str | None = None
) -> Score:
    """Ask ``judge`` to rate ``answer`` from 1 to 10; the score is the rating / 10."""
    messages = judge_messages(prompt, question=question, answer=answer, reference=reference)
    judgment = await judge.complete(messages)
    rating = parse_rating(judgment)
    details: dict[str, Any] = {"judge_prompt": prompt.name, "rating": rating, "judgment": judgment}
    if rating is None:
        return Score(0.0, {**details, "error": "the judge gave no [[rating]]"})
    return Score(min(max(rating / 10, 0.0), 1.0), details)
