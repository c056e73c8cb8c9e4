"""Scorers: pure functions from an answer and a reference to a :class:`~evals.samples.Score`.

They import nothing of the orchestrator, so distillation can use them to check transcripts.
The heavy checkers (Math-Verify, rouge-score) load on first use, from the ``[eval]`` extra.
"""

from evals.scorers.code import extract_code, humaneval_program, score_humaneval, score_mbpp
from evals.scorers.judging import JudgePrompt, grade, judge_messages, parse_rating
from evals.scorers.math_answer import math_equivalent, score_math
from evals.scorers.numeric import final_number, score_numeric
from evals.scorers.rouge import rouge_l, score_rouge_l, subject_line
from evals.scorers.routing import prerouter_decision, score_route

__all__ = [
    "JudgePrompt",
    "extract_code",
    "final_number",
    "grade",
    "humaneval_program",
    "judge_messages",
    "math_equivalent",
    "parse_rating",
    "prerouter_decision",
    "rouge_l",
    "score_humaneval",
    "score_math",
    "score_mbpp",
    "score_numeric",
    "score_rouge_l",
    "score_route",
    "subject_line",
]
