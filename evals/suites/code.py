"""Code suites: HumanEval and MBPP, pass@1 with each data set's own tests in the sandbox.

Prompts are what a user would send: HumanEval's signature and docstring after "Complete this
Python function", MBPP's task text with its three asserts (as in the MBPP paper, so the model
knows the function's name and signature). Each test run is a sandboxed process, started from a
worker thread so that many samples are scored at once.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

from evals.data import DataSource
from evals.judge import Judge
from evals.samples import Prediction, Sample, Score, user_message
from evals.scorers.code import score_humaneval, score_mbpp

MBPP_TEST_IDS = range(11, 511)
"""The MBPP test split (task ids 11-510), per the data set's README."""


def humaneval_request(prompt: str) -> str:
    """The user message for a HumanEval problem."""
    return f"Complete this Python function:\n\n```python\n{prompt.rstrip()}\n```"


def mbpp_request(text: str, tests: list[str]) -> str:
    """The user message for an MBPP task."""
    return f"{text}\nYour code should pass these tests:\n\n" + "\n".join(tests)


def mbpp_entry_point(code: str, tests: list[str]) -> str | None:
    """The function the asserts call: the first one the reference code defines that they use."""
    called = "\n".join(tests)
    for name in re.findall(r"^def\s+(\w+)", code, re.M):
        if re.search(rf"\b{re.escape(name)}\s*\(", called):
            return name
    return None


class HumanEval:
    """OpenAI's 164 hand-written problems; pass@1 with the official ``check(candidate)``."""

    name = "humaneval"
    needs_judge = False

    def load(self, source: DataSource) -> Iterator[Sample]:
        for row in source.rows("humaneval"):
            yield Sample(
                id=f"humaneval:{row['task_id']}",
                suite=self.name,
                messages=(user_message(humaneval_request(row["prompt"])),),
                reference={
                    "prompt": row["prompt"],
                    "entry_point": row["entry_point"],
                    "test": row["test"],
                },
                domain="code",
                metadata={"canonical_solution": row["canonical_solution"]},
            )

    async def score(
        self, sample: Sample, prediction: Prediction, *, judge: Judge | None = None
    ) -> Score:
        return await asyncio.to_thread(score_humaneval, prediction.answer, **sample.reference)


class MBPP:
    """Mostly Basic Python Problems, test split; pass@1 with the task's three asserts."""

    name = "mbpp"
    needs_judge = False

    def load(self, source: DataSource) -> Iterator[Sample]:
        for row in source.rows("mbpp"):
            if row["task_id"] not in MBPP_TEST_IDS:
                continue
            tests = list(row["test_list"])
            yield Sample(
                id=f"mbpp:test:{row['task_id']}",
                suite=self.name,
                messages=(user_message(mbpp_request(row["text"], tests)),),
                reference={
                    "tests": tests,
                    "setup": row["test_setup_code"],
                    "entry_point": mbpp_entry_point(row["code"], tests),
                },
                domain="code",
                metadata={"code": row["code"]},
            )

    async def score(
        self, sample: Sample, prediction: Prediction, *, judge: Judge | None = None
    ) -> Score:
        return await asyncio.to_thread(score_mbpp, prediction.answer, **sample.reference)
