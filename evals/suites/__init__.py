"""Evaluation suites: each loads its data set as :class:`~evals.samples.Sample` items and scores
a :class:`~evals.samples.Prediction` for one of them.

=============  =========================================  ==========================================
suite          data                                       score
=============  =========================================  ==========================================
``gsm8k``      GSM8K test (1,319)                         final number equals the reference
``math500``    MATH-500 (500)                             answer equivalence (Math-Verify, sympy)
``humaneval``  HumanEval (164)                            pass@1 of the official tests (sandbox)
``mbpp``       MBPP test split, task ids 11-510 (500)     pass@1 of the task's asserts (sandbox)
``email``      Self-Instruct email tasks (11) and AESLC   ROUGE-L F1; with a judge, its rating / 10
               subject lines (1,960)
``mt_bench``   MT-Bench first turns (80)                  LLM judge, FastChat's prompts, rating / 10
``routing``    800 prompts, 200 per domain (math, code,   the pre-router's decision equals the label
               email, none)
=============  =========================================  ==========================================
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from evals.data import DataSource
from evals.errors import UnknownSuiteError
from evals.judge import Judge
from evals.samples import Prediction, Sample, Score
from evals.suites.code import MBPP, HumanEval
from evals.suites.email import Email
from evals.suites.math import GSM8K, MATH500
from evals.suites.mt_bench import MTBench
from evals.suites.routing import Routing


class Suite(Protocol):
    """A data set and how to score answers to it."""

    name: str
    needs_judge: bool
    """``score`` requires a judge (``mt_bench``); ``email`` uses one only if given."""

    def load(self, source: DataSource) -> Iterator[Sample]:
        """The whole split, in a deterministic order."""
        ...

    async def score(
        self, sample: Sample, prediction: Prediction, *, judge: Judge | None = None
    ) -> Score:
        """How good ``prediction`` is for ``sample``; blocking work runs in a thread."""
        ...


_SUITES: dict[str, type[Suite]] = {
    suite.name: suite for suite in (GSM8K, MATH500, HumanEval, MBPP, Email, MTBench, Routing)
}
SUITE_NAMES: tuple[str, ...] = tuple(_SUITES)


def get_suite(name: str) -> Suite:
    """A fresh suite by name; :class:`~evals.errors.UnknownSuiteError` lists the valid ones."""
    try:
        return _SUITES[name]()
    except KeyError:
        raise UnknownSuiteError(name, SUITE_NAMES) from None


__all__ = ["SUITE_NAMES", "Suite", "get_suite"]
