"""ROUGE-L F1 against one or more human references (Google's ``rouge-score``, the reference
implementation of ROUGE-1.5.5), with Porter stemming as in the summarisation literature.

With several references (AESLC has three subject lines per email) the best match counts, as
``RougeScorer.score_multi`` defines it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from evals.errors import MissingExtraError
from evals.samples import NO_ANSWER, Score


@functools.cache
def _scorer() -> Any:
    try:
        from rouge_score import rouge_scorer
    except ImportError as exc:
        raise MissingExtraError("rouge-score", "ROUGE scoring") from exc
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, references: Sequence[str]) -> float:
    """The best ROUGE-L F1 of ``prediction`` over ``references``."""
    return float(_scorer().score_multi(list(references), prediction)["rougeL"].fmeasure)


def score_rouge_l(answer: str | None, references: Sequence[str]) -> Score:
    """ROUGE-L F1 of ``answer`` (a drafted email, a summary, a subject line)."""
    if answer is None:
        return NO_ANSWER
    value = rouge_l(answer, references)
    return Score(value, {"rouge_l": round(value, 4)})


_PREAMBLE = re.compile(r":\s*$")
_LABEL = re.compile(r"^\s*(?:\*\*)?subject(?: line)?(?:\*\*)?\s*:\s*(?:\*\*)?\s*", re.IGNORECASE)


def subject_line(answer: str) -> str:
    """The subject line in a chatty reply: a ``Subject:`` line if there is one, else the first
    line that does not introduce something ("Here is a subject line:"), without markdown
    emphasis or quotes."""
    lines = [line.strip() for line in answer.splitlines() if line.strip()]
    labelled = [line for line in lines if _LABEL.match(line)]
    candidates = labelled or [line for line in lines if not _PREAMBLE.search(line)] or lines
    if not candidates:
        return ""
    line = _LABEL.sub("", candidates[0])
    return line.strip().strip("*_#").strip().strip("\"'“”").strip()
