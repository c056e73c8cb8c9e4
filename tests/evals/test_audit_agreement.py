"""The agreement judges: the evaluation scorers with the lead's answer as the reference; code
with tests runs in the real sandbox."""

from __future__ import annotations

from evals.audits import judge_for

MATH = judge_for("numeric_answer", min_rouge=0.4)
CODE = judge_for("python_function", min_rouge=0.4)
EMAIL = judge_for("email_text", min_rouge=0.4)


def test_math_agrees_on_the_final_number_however_it_is_written() -> None:
    agreed, score = MATH.judge("Q", "12 pens at $3: 36 dollars. Answer: 36", "The total is $36.00")
    assert agreed and score.value == 1.0
    agreed, _ = MATH.judge("Q", "Answer: 35", "The answer is 36.")
    assert not agreed


def test_math_without_a_number_in_the_lead_answer_uses_math_verify() -> None:
    agreed, _ = MATH.judge("Q", "So the answer is $\\boxed{\\frac{1}{2}}$", "\\dfrac{1}{2}")
    assert agreed
    agreed, _ = MATH.judge("Q", "So the answer is $\\boxed{x^2}$", "x^3")
    assert not agreed


def test_code_with_tests_in_the_request_runs_them_in_the_sandbox() -> None:
    request = "Write add(a, b).\nYour code should pass these tests:\n\nassert add(2, 3) == 5"
    good = "```python\ndef add(a, b):\n    return a + b\n```"
    wrong = "```python\ndef add(a, b):\n    return a - b\n```"
    agreed, score = CODE.judge(request, good, "irrelevant: the tests decide")
    assert agreed and score.details["passed"] is True
    agreed, score = CODE.judge(request, wrong, good)
    assert not agreed and "AssertionError" in score.details["error"]


def test_code_without_tests_compares_the_code_without_comments_and_blank_lines() -> None:
    lead = "Here:\n```python\ndef add(a, b):\n    return a + b\n```"
    same = "```python\n# adds\ndef add(a, b):\n\n    return a + b   \n```"
    assert CODE.judge("Write add.", same, lead)[0]
    assert not CODE.judge("Write add.", "def add(a, b):\n    return b + a", lead)[0]


def test_email_agrees_when_rouge_against_the_lead_reaches_the_floor() -> None:
    lead = "Hi Sam, could I take Friday off for a family event? Thanks, Ana"
    close = "Hi Sam, could I please take Friday off for a family event? Thank you, Ana"
    agreed, score = EMAIL.judge("Ask for Friday off", close, lead)
    assert agreed and score.value >= 0.4 and score.details["rouge_l"] == round(score.value, 4)
    agreed, score = EMAIL.judge("Ask for Friday off", "Quarterly numbers attached.", lead)
    assert not agreed and score.value < 0.4


def test_a_learned_text_specialist_gets_the_text_judge() -> None:
    assert judge_for("nonempty", min_rouge=0.3).name == "text"
    assert judge_for("nonempty", min_rouge=0.3).agrees_at == 0.3
