"""The scorers as pure functions: answer extraction from chatty replies, equivalence, sandboxed
tests, ROUGE-L, and FastChat's judge prompts and rating parsing."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from evals.data import DataSource
from evals.samples import NO_ANSWER
from evals.scorers.code import (
    defines,
    extract_code,
    humaneval_program,
    run_tests,
    score_humaneval,
    score_mbpp,
)
from evals.scorers.judging import JudgePrompt, judge_messages, parse_rating
from evals.scorers.math_answer import math_equivalent, score_math
from evals.scorers.numeric import final_number, score_numeric
from evals.scorers.rouge import rouge_l, score_rouge_l, subject_line
from evals.scorers.routing import prerouter_decision, score_route
from tools.sandbox import SandboxLimits

# --- GSM8K: the final number ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "number", "found_by"),
    [
        ("She makes 9 * 2 = $<<9*2=18>>18 every day.\n#### 18", "18", "####"),
        ("#### 1,600", "1600", "####"),
        ("So 3 + 4 = 7 eggs, and she sells them.\n\nThe answer is $\\boxed{18}$.", "18", "boxed"),
        ("First 5, then 7. The final answer is: $1,234.50", "2469/2", "answer is"),
        ("**Answer:** 42 apples (not 41)", "42", "answer is"),
        ("The answer is **-3**", "-3", "answer is"),
        ("She has 3 apples, buys 4 more, so she has 7 apples.", "7", "last number"),
        ("Each gets 3/4 of a pie", "3/4", "last number"),
        ("It is 18.00 dollars.", "18", "last number"),
    ],
)
def test_final_number_reads_the_most_deliberate_statement(
    reply: str, number: str, found_by: str
) -> None:
    assert final_number(reply) == (Fraction(number), found_by)


def test_final_number_prefers_the_marked_answer_to_later_numbers() -> None:
    assert final_number("#### 12\n\nCheck: 12 - 2 = 10") == (Fraction(12), "####")
    assert final_number("I first thought 3. \\boxed{5} Checking: 5 * 2 = 10") == (5, "boxed")
    assert final_number("The answer is 9, since 9 = 3 * 3") == (9, "answer is")
    # "answer" as a verb is not a statement of the answer.
    assert final_number("She must answer 5 questions; 20 in total") == (20, "last number")
    assert final_number("no digits here") is None


def test_score_numeric_compares_values_not_spellings() -> None:
    assert score_numeric("The total is $1,000.00.", "1,000").value == 1.0
    wrong = score_numeric("#### 17", "18")
    assert wrong.value == 0.0 and wrong.details["extracted"] == "17"
    assert score_numeric("I cannot tell.", "18").details["error"] == "no number"
    assert score_numeric(None, "18") == NO_ANSWER


# --- MATH-500: answer equivalence -------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "reference"),
    [
        ("0.5", r"\frac{1}{2}"),
        (r"The answer is $\dfrac{1}{2}$.", r"\frac{1}{2}"),
        (r"so the probability is \boxed{\tfrac12}", r"\frac{1}{2}"),
        (r"\boxed{10\text{ cm}}", "10"),
        (r"Each side is $10^\circ$", "10"),
        (r"\boxed{30}", r"30^\circ"),
        (r"\boxed{90^{\circ}}", r"90^\circ"),
        (r"\boxed{(-\infty,2]}", r"(-\infty, 2]"),
        (r"so $x \in [2, 5)$", "[2,5)"),
        (r"\boxed{\text{Evelyn}}", r"\text{Evelyn}"),
        (r"\boxed{C}", r"\text{(C)}"),
        (r"\boxed{\frac{\sqrt2}{2}}", r"\sqrt{2}/2"),
        (r"\boxed{(x+1)^2}", "x^2+2x+1"),
        (r"\boxed{1000}", r"1,\!000"),
        (r"$(3, \pi/2)$", r"\left( 3, \frac{\pi}{2} \right)"),
        ("I tried 3, but no: the final answer is 5.", "5"),
    ],
)
def test_equivalent_answers(reply: str, reference: str) -> None:
    equal, details = math_equivalent(reply, reference)
    assert equal, details


@pytest.mark.parametrize(
    ("reply", "reference"),
    [
        ("0.51", r"\frac{1}{2}"),
        (r"\boxed{4}", "3"),
        (r"\boxed{(-\infty,2)}", r"(-\infty, 2]"),  # open and closed ends differ
        (r"\boxed{\text{Alice}}", r"\text{Evelyn}"),
        ("I do not know.", r"\frac{1}{2}"),
    ],
)
def test_different_answers(reply: str, reference: str) -> None:
    assert score_math(reply, reference).value == 0.0


def test_score_math_reports_what_it_extracted() -> None:
    score = score_math(r"Thus \boxed{\dfrac{3}{4}}.", r"\frac34")
    assert score.value == 1.0 and score.details == {
        "extracted": r"\frac{3}{4}",
        "expected": r"\frac34",
    }
    assert score_math(None, "1") == NO_ANSWER


# --- Code: extraction and sandboxed tests -----------------------------------------------------

FAST = SandboxLimits(timeout_s=10, cpu_s=5)
PROMPT = 'def add(a: int, b: int) -> int:\n    """Add two numbers."""\n'
TEST = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"


def test_extract_code_takes_the_block_that_defines_the_function() -> None:
    reply = (
        "Here is a helper:\n```python\nimport math\n```\nAnd the solution:\n"
        "```python\ndef add(a, b):\n    return a + b\n```\nUsage:\n```python\nprint(add(1, 2))\n```"
    )
    assert extract_code(reply, "add") == "def add(a, b):\n    return a + b\n"
    assert extract_code(reply) == "import math\n"  # no entry point: the first Python block


def test_extract_code_fallbacks() -> None:
    assert extract_code("```\nx = 1\n```") == "x = 1\n"  # untagged fence
    assert extract_code("```bash\npip install x\n```\n```py\ny = 2\n```") == "y = 2\n"
    assert extract_code("Sure!\n```python\ndef f():\n    return 1") == "def f():\n    return 1"
    assert extract_code("def f():\n    return 1\n") == "def f():\n    return 1\n"  # bare code
    assert defines("class A:\n    async def add(self):\n        pass", "add")
    assert not defines("def adder():\n    pass", "add")


@pytest.mark.parametrize(
    "answer",
    [
        "    return a + b\n",  # a completion: the body, indented
        "```python\nreturn a + b\n```",  # the body, not indented
        "Here:\n```python\ndef add(a, b):\n    return a + b\n```\nIt adds.",  # whole function
        f"```python\n{PROMPT}    return a + b\n```",  # prompt + body
    ],
)
def test_humaneval_answers_in_every_shape_pass(answer: str) -> None:
    score = score_humaneval(answer, prompt=PROMPT, entry_point="add", test=TEST, limits=FAST)
    assert score.value == 1.0, score.details


def test_humaneval_program_keeps_the_prompts_imports_for_a_whole_function() -> None:
    prompt = 'from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    """Sum."""\n'
    program = humaneval_program(
        prompt, "total", "```python\ndef total(xs: List[int]):\n    return sum(xs)\n```"
    )
    assert program.startswith("from typing import List") and program.endswith("return sum(xs)\n")


def test_a_wrong_answer_fails_with_the_assertion_shown() -> None:
    score = score_humaneval(
        "    return a - b\n", prompt=PROMPT, entry_point="add", test=TEST, limits=FAST
    )
    assert score.value == 0.0 and score.details["passed"] is False
    assert (
        score.details["error"] == "AssertionError" and "candidate(2, 3)" in score.details["stderr"]
    )


def test_a_hanging_answer_is_stopped_by_the_sandbox() -> None:
    score = run_tests("while True:\n    pass", "", limits=SandboxLimits(timeout_s=2, cpu_s=1))
    assert score.value == 0.0 and score.details["error"] in {"cpu", "timeout"}


def test_without_the_sandbox_code_scoring_says_why_it_cannot_run() -> None:
    script = (
        "from evals.scorers.code import run_tests\n"
        "from tools.sandbox import SandboxUnavailable\n"
        "try:\n"
        "    run_tests('x = 1', 'assert x == 1')\n"
        "except SandboxUnavailable as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PATH": "/nonexistent"},  # no bubblewrap to be found
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.startswith(
        "the code sandbox is unavailable: bubblewrap (bwrap) is not installed. "
        "Fix: install bubblewrap"
    )


def test_mbpp_answer_runs_after_setup_with_the_asserts() -> None:
    tests = ["assert double(2) == 4", "assert double(0) == 0"]
    reply = "```python\ndef double(x):\n    return x * factor\n```"
    assert (
        score_mbpp(reply, tests=tests, setup="factor = 2", entry_point="double", limits=FAST).value
        == 1.0
    )
    assert score_mbpp(reply, tests=tests, setup="factor = 3", limits=FAST).value == 0.0
    assert score_mbpp(None, tests=tests) == NO_ANSWER


# --- ROUGE-L and subject lines ----------------------------------------------------------------


def test_rouge_l_takes_the_best_reference() -> None:
    assert rouge_l("meeting confirmation", ["meeting confirmation"]) == pytest.approx(1.0)
    assert rouge_l("lunch on friday", ["meeting confirmation"]) == 0.0
    # Porter-stemmed: a plural matches its singular.
    assert rouge_l("meetings confirmed", ["meeting confirmed"]) == pytest.approx(1.0)
    best = rouge_l("meeting confirmed tuesday", ["lunch plans", "meeting confirmed"])
    assert best == pytest.approx(0.8)
    score = score_rouge_l("meeting confirmed tuesday", ["meeting confirmed"])
    assert score.value == pytest.approx(0.8) and score.details == {"rouge_l": 0.8}


@pytest.mark.parametrize(
    ("reply", "subject"),
    [
        ("Meeting confirmation", "Meeting confirmation"),
        ("Subject: Meeting confirmed", "Meeting confirmed"),
        ("**Subject:** Draw files for Bishops Corner", "Draw files for Bishops Corner"),
        (
            "Here is a subject line for the email:\n\n**Meeting Confirmation: Oct 30**",
            "Meeting Confirmation: Oct 30",
        ),
        ('"Draw file for Bishops Corner"', "Draw file for Bishops Corner"),
        ("Sure! Here's one:\nSubject line: Q3 budget review\n\nLet me know.", "Q3 budget review"),
        ("", ""),
    ],
)
def test_subject_line_is_picked_out_of_a_chatty_reply(reply: str, subject: str) -> None:
    assert subject_line(reply) == subject


# --- The judge's prompts and ratings ----------------------------------------------------------


@pytest.mark.parametrize(
    ("judgment", "rating"),
    [
        ("The answer is accurate and concise. Rating: [[8]]", 8.0),
        ("Rating: [[7.5]]", 7.5),
        ("Rating: [6]", 6.0),  # FastChat's backup pattern
        ("First [[3]], then on reflection [[9]]", 3.0),  # the first one counts, as in FastChat
        ("[[10]] and [4]", 10.0),  # the double-bracket pattern wins over an earlier single one
        ("I would rate it eight out of ten.", None),
        ("Rating: [[A]]", None),
    ],
)
def test_ratings_are_parsed_as_fastchat_parses_them(judgment: str, rating: float | None) -> None:
    assert parse_rating(judgment) == rating


def test_judge_messages_fill_the_official_templates(data_dir: Path) -> None:
    prompts = {
        row["name"]: JudgePrompt.from_row(row) for row in DataSource(data_dir).rows("judge_prompts")
    }
    answer = "Use a dict: {'a': 1}."  # braces in an answer must not be read as fields
    general = judge_messages(prompts["single-v1"], question="How do I map keys?", answer=answer)
    assert general[0] == {"role": "system", "content": "You are a helpful assistant."}
    user = general[1]["content"]
    assert user.startswith("[Instruction]\nPlease act as an impartial judge")
    assert "[Question]\nHow do I map keys?\n\n[The Start of Assistant's Answer]\n" + answer in user
    assert 'strictly following this format: "[[rating]]"' in user

    math = judge_messages(prompts["single-math-v1"], question="2+2?", answer="4", reference="Four.")
    assert (
        "[The Start of Reference Answer]\nFour.\n[The End of Reference Answer]"
        in math[1]["content"]
    )
    assert JudgePrompt.from_row(prompts["single-v1"].as_dict()) == prompts["single-v1"]


# --- Routing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "decision"),
    [
        ("cascade:accepted:math", "math"),
        ("cascade:escalated:code", "code"),
        ("cascade:lead", "none"),
        ("slm:email", "email"),
        ("none", "none"),
        ("email", "email"),
        ("lead", None),
        ("router", None),
        ("", None),
        (None, None),
    ],
)
def test_prerouter_decision_is_read_from_the_orchestrators_route(
    route: str | None, decision: str | None
) -> None:
    assert prerouter_decision(route) == decision


def test_score_route() -> None:
    assert score_route("cascade:lead", "none").value == 1.0
    assert score_route("cascade:accepted:email", "none").value == 0.0
    unscorable = score_route("router", "math")
    assert unscorable.value == 0.0 and "cascade mode" in unscorable.details["error"]
