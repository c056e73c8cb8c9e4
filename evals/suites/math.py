"""Math suites: GSM8K (a number) and MATH-500 (a LaTeX answer).

The orchestrator is sent the problem as a user would type it, with no answer format imposed; the
scorers find the final answer in whatever the model wrote.
"""

from __future__ import annotations

from collections.abc import Iterator

from evals.data import DataSource
from evals.judge import Judge
from evals.samples import Prediction, Sample, Score, user_message
from evals.scorers.math_answer import score_math
from evals.scorers.numeric import score_numeric


def gsm8k_final_answer(solution: str) -> str:
    """The number after ``####`` in a GSM8K reference solution (``"1,600"`` stays as written)."""
    return solution.rsplit("####", 1)[-1].strip()


class GSM8K:
    """Grade-school word problems; exact match on the final number."""

    name = "gsm8k"
    needs_judge = False

    def load(self, source: DataSource) -> Iterator[Sample]:
        for index, row in enumerate(source.rows("gsm8k")):
            yield Sample(
                id=f"gsm8k:test:{index}",
                suite=self.name,
                messages=(user_message(row["question"]),),
                reference=gsm8k_final_answer(row["answer"]),
                domain="math",
                metadata={"solution": row["answer"]},
            )

    async def score(
        self, sample: Sample, prediction: Prediction, *, judge: Judge | None = None
    ) -> Score:
        return score_numeric(prediction.answer, sample.reference)


class MATH500:
    """Competition problems (the 500-problem MATH test subset); answer equivalence."""

    name = "math500"
    needs_judge = False

    def load(self, source: DataSource) -> Iterator[Sample]:
        for row in source.rows("math500"):
            yield Sample(
                id=f"math500:{row['unique_id'].removesuffix('.json')}",
                suite=self.name,
                messages=(user_message(row["problem"]),),
                reference=row["answer"],
                domain="math",
                metadata={
                    "subject": row["subject"],
                    "level": row["level"],
                    "solution": row["solution"],
                },
            )

    async def score(
        self, sample: Sample, prediction: Prediction, *, judge: Judge | None = None
    ) -> Score:
        return score_math(prediction.answer, sample.reference)
