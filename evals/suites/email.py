"""The email suite: drafting tasks from Self-Instruct and subject lines for real (Enron) emails.

* Self-Instruct (Apache-2.0): the expert-written tasks that are the email specialist's job —
  draft, rewrite, reply, summarise, title an email — with the authors' reference output.
* AESLC dev split (CC BY-NC-SA 4.0: evaluation only, never training data): "Write a subject
  line for this email", scored against the three human-written subject lines.

The score is ROUGE-L F1 against the references (the subject line is first picked out of a chatty
reply). ROUGE rewards wording close to one particular reference, so with a judge the score is
instead the judge's rating on MT-Bench's general prompt (``single-v1``), ROUGE-L staying in the
details; reports should say which was used (``details["judge_prompt"]`` is present with a judge).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from evals.data import DataSource
from evals.judge import Judge
from evals.samples import NO_ANSWER, Prediction, Sample, Score, user_message
from evals.scorers.judging import JudgePrompt, grade
from evals.scorers.rouge import rouge_l, subject_line

EMAIL_TASK_IDS = frozenset(
    {
        "user_oriented_task_5",  # invite friends to dinner
        "user_oriented_task_6",  # rewrite an email more professionally
        "user_oriented_task_52",  # email signature
        "user_oriented_task_57",  # rejection letter (Gmail app)
        "user_oriented_task_73",  # confirmation email
        "user_oriented_task_74",  # salary negotiation email
        "user_oriented_task_75",  # event reminder email
        "seed_task_4",  # subject line for an email
        "seed_task_18",  # reply and refuse an invitation
        "seed_task_100",  # decline a job offer by email
        "seed_task_137",  # summarise an email in one sentence
    }
)
"""Self-Instruct tasks that are the email specialist's job (draft, rewrite, reply, summarise,
subject line). The other tasks that mention email are tone analysis or spam/promotion
classification, or matched the word "email" without being about one."""

SUBJECT_LINE_REQUEST = "Write a subject line for this email:\n\n{body}"
"""The AESLC request, as a user would phrase it."""

JUDGE_PROMPT = "single-v1"


def with_input(instruction: str, text: str) -> str:
    """A Self-Instruct task as one message: the instruction, then its input if it has one."""
    return f"{instruction}\n\n{text}" if text.strip() else instruction


def email_task_rows(source: DataSource) -> Iterator[dict[str, Any]]:
    """The Self-Instruct email tasks (user-oriented first, then seed tasks, in file order)."""
    for dataset in ("self_instruct_user", "self_instruct_seed"):
        for row in source.rows(dataset):
            if row["id"] in EMAIL_TASK_IDS:
                yield row


def judge_prompts(source: DataSource) -> dict[str, dict[str, str]]:
    """FastChat's judge prompts by name, as plain dicts (they travel inside samples)."""
    return {
        row["name"]: JudgePrompt.from_row(row).as_dict() for row in source.rows("judge_prompts")
    }


class Email:
    """Email drafting and subject lines; ROUGE-L, or a judge's rating when one is given."""

    name = "email"
    needs_judge = False

    def load(self, source: DataSource) -> Iterator[Sample]:
        judge_prompt = judge_prompts(source)[JUDGE_PROMPT]
        for row in email_task_rows(source):
            instance = row["instances"][0]
            yield Sample(
                id=f"email:self_instruct:{row['id']}",
                suite=self.name,
                messages=(user_message(with_input(row["instruction"], instance["input"])),),
                reference={"references": [instance["output"]], "judge_prompt": judge_prompt},
                domain="email",
                metadata={"source": "self_instruct"},
            )
        for row in source.rows("aeslc"):
            yield Sample(
                id=f"email:aeslc:{row['id']}",
                suite=self.name,
                messages=(user_message(SUBJECT_LINE_REQUEST.format(body=row["email_body"])),),
                reference={
                    "references": [row["ann0"], row["ann1"], row["ann2"]],
                    "judge_prompt": judge_prompt,
                },
                domain="email",
                metadata={"source": "aeslc"},
            )

    async def score(
        self, sample: Sample, prediction: Prediction, *, judge: Judge | None = None
    ) -> Score:
        if prediction.answer is None:
            return NO_ANSWER
        details: dict[str, Any] = {}
        text = prediction.answer
        if sample.metadata["source"] == "aeslc":  # only the subject line is compared
            text = details["extracted"] = subject_line(prediction.answer)
        rouge = rouge_l(text, sample.reference["references"])
        details["rouge_l"] = round(rouge, 4)
        if judge is None:
            return Score(rouge, details)
        graded = await grade(
            judge,
            JudgePrompt.from_row(sample.reference["judge_prompt"]),
            question=sample.prompt,
            answer=prediction.answer,
        )
        return Score(graded.value, {**details, **graded.details})
