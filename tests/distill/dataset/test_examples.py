"""Which runs teach a specialist, and what: one rule per kind of run."""

from __future__ import annotations

from dataclasses import replace

import pytest

from distill.dataset import DistillTarget, Example, Rejection, Source
from distill.dataset.examples import extract_example
from specialists.errors import ConfigurationError
from tests.distill.dataset.helpers import MATH, escalated
from tools.context import ToolCall

LIMIT = 8000


def extract(transcript, target=MATH):
    return extract_example(transcript, target, max_chars=LIMIT)


def test_an_escalated_run_teaches_the_leads_correction() -> None:
    example = extract(escalated(1, "What is 17 * 24?", "408"))
    assert isinstance(example, Example)
    assert example.source is Source.CORRECTION
    assert example.messages() == [
        {"role": "system", "content": "Reply with the number."},
        {"role": "user", "content": "What is 17 * 24?"},
        {"role": "assistant", "content": "408"},
    ]


def test_a_delegation_teaches_the_last_task_sent_with_the_leads_final_answer() -> None:
    run = escalated(
        2,
        "My shop sold 17 boxes of 24 pens; how many pens?",
        "408 pens.",
        route="router",
        escalated=False,
        tool_calls=(
            ToolCall(
                "math_specialist", {"request": "17 boxes of 24"}, "{}", 0.0, specialist="math"
            ),
            ToolCall("calculator", {"expression": "17*24"}, "408", 0.0),
            ToolCall(
                "math_specialist", {"request": "What is 17 * 24?"}, "{}", 0.0, specialist="math"
            ),
        ),
    )
    example = extract(run)
    assert isinstance(example, Example) and example.source is Source.DELEGATION
    assert (example.user, example.assistant) == ("What is 17 * 24?", "408 pens.")


TOOL_CONVERSATION = (
    {"role": "user", "content": "What is 2 + 2, and the weather in Rome?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "call_1", "name": "get_weather", "arguments": "{}"}],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
)
"""A follow-up of the app's tool call: its answer rests on what the tool said."""


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"error": "lead failed"}, Rejection.FAILED),
        ({"degraded": True}, Rejection.FAILED),
        ({"answer": None}, Rejection.FAILED),
        ({"answer": "  "}, Rejection.FAILED),
        ({"feedback": (1.0, -0.5)}, Rejection.NEGATIVE_FEEDBACK),
        ({"answer": "I cannot say."}, Rejection.VALIDATOR),  # numeric_answer: no number
        ({"answer": "4" * LIMIT}, Rejection.TOO_LONG),
        ({"specialists": ("code",)}, Rejection.NOT_SELECTED),
        ({"input_messages": TOOL_CONVERSATION}, Rejection.TOOL_CONVERSATION),
    ],
)
def test_runs_that_teach_nothing_say_why(fields: dict, reason: Rejection) -> None:
    assert extract(replace(escalated(3, "What is 2 + 2?", "4"), **fields)) is reason


def test_the_specialists_own_answer_counts_only_when_a_user_confirmed_it() -> None:
    alone = {"route": "cascade:accepted:math", "escalated": False}
    assert extract(escalated(4, "What is 2 + 2?", "4", **alone)) is Rejection.UNVERIFIED
    confirmed = extract(escalated(4, "What is 2 + 2?", "4", feedback=(1.0,), **alone))
    assert isinstance(confirmed, Example) and confirmed.source is Source.CONFIRMED
    slm = {"route": "slm:math", "escalated": False, "feedback": (0.0,)}
    assert extract(escalated(4, "What is 2 + 2?", "4", **slm)) is Rejection.UNVERIFIED


def test_chosen_runs_teach_the_leads_answer_to_the_users_request() -> None:
    lead_only = escalated(
        5,
        "Convert 3 March 2024 to ISO.",
        "2024-03-03",
        route="llm",
        escalated=False,
        specialists=(),
        tool_calls=(),
    )
    target = DistillTarget("dates", "Reply YYYY-MM-DD.", run_ids=frozenset({"run-0005"}))
    example = extract(lead_only, target)
    assert isinstance(example, Example) and example.source is Source.LEAD
    assert (example.user, example.assistant) == ("Convert 3 March 2024 to ISO.", "2024-03-03")
    other = DistillTarget("dates", "Reply YYYY-MM-DD.", run_ids=frozenset({"run-9999"}))
    assert extract(lead_only, other) is Rejection.NOT_SELECTED


def test_an_unknown_validator_fails_when_the_target_is_made() -> None:
    with pytest.raises(ConfigurationError, match="unknown validator 'iso'"):
        DistillTarget("dates", "Reply YYYY-MM-DD.", validator="iso")
