"""MT-Bench, graded by an LLM judge with FastChat's single-answer prompts.

The harness sends one request per sample, so each question's first turn is asked (its second
turn depends on the system's own first answer and needs a conversation). As in FastChat, math,
reasoning and coding answers are judged against GPT-4's reference answer (``single-math-v1``),
the other categories without one (``single-v1``). The score is the rating / 10; a reply without
a rating scores 0 and says so (``details["rating"]`` is ``None``; FastChat drops such ratings).
"""

from __future__ import annotations

from collections.abc import Iterator

from evals.data import DataSource
from evals.errors import JudgeError
from evals.judge import Judge
from evals.samples import NO_ANSWER, Prediction, Sample, Score, user_message
from evals.scorers.judging import NEEDS_REFERENCE, JudgePrompt, grade
from evals.suites.email import judge_prompts

DOMAINS = {"math": "math", "coding": "code"}
"""MT-Bench categories a specialist covers."""


class MTBench:
    """80 open-ended questions in 8 categories; an LLM judge rates each answer from 1 to 10."""

    name = "mt_bench"
    needs_judge = True

    def load(self, source: DataSource) -> Iterator[Sample]:
        prompts = judge_prompts(source)
        references = {
            row["question_id"]: row["choices"][0]["turns"][0]
            for row in source.rows("mt_bench_reference")
        }
        for row in source.rows("mt_bench"):
            category = row["category"]
            with_reference = category in NEEDS_REFERENCE
            yield Sample(
                id=f"mt_bench:{row['question_id']}",
                suite=self.name,
                messages=(user_message(row["turns"][0]),),
                reference={
                    "judge_prompt": prompts["single-math-v1" if with_reference else "single-v1"],
                    "reference_answer": references[row["question_id"]] if with_reference else None,
                },
                domain=DOMAINS.get(category),
                metadata={"category": category, "second_turn": row["turns"][1]},
            )

    async def score(
        self, sample: Sample, prediction: Prediction, *, judge: Judge | None = None
    ) -> Score:
        if judge is None:
            raise JudgeError(
                "the mt_bench suite is graded by an LLM judge; configure one "
                "(UNDERSTUDY_EVAL_JUDGE_MODEL and/or UNDERSTUDY_EVAL_JUDGE_BASE_URL)"
            )
        if prediction.answer is None:
            return NO_ANSWER
        return await grade(
            judge,
            JudgePrompt.from_row(sample.reference["judge_prompt"]),
            question=sample.prompt,
            answer=prediction.answer,
            reference=sample.reference["reference_answer"],
        )
