"""Splicing a run's kept turn back into the caller's history: what is replaced, what is left
alone, and what cannot be made whole (a 400 naming ``messages``)."""

from __future__ import annotations

import pytest

from orchestrator.handover import Handover, continue_history, echoed_call_ids, new_call_id
from orchestrator.request import UnsupportedParameter
from specialists.backend import ChatMessage, FunctionCall

QUESTION: ChatMessage = {"role": "user", "content": "6*7, and the weather in Rome?"}
OURS = FunctionCall(id="lead_1", name="math_specialist", arguments='{"request": "6*7"}')


def handover(*cities: str) -> Handover:
    calls = tuple(
        FunctionCall(id=new_call_id(), name="get_weather", arguments=f'{{"city": "{city}"}}')
        for city in cities
    )
    turn: tuple[ChatMessage, ...] = (
        {"role": "assistant", "content": "Let me check.", "tool_calls": [OURS, *calls]},
        {"role": "tool", "tool_call_id": OURS["id"], "content": "42"},
    )
    return Handover(run_id=f"run-{'-'.join(cities)}", calls=calls, turn=turn)


def echo(*calls: FunctionCall) -> ChatMessage:
    return {"role": "assistant", "content": "", "tool_calls": list(calls)}


def answer(call: FunctionCall, text: str = "sunny") -> ChatMessage:
    return {"role": "tool", "tool_call_id": call["id"], "content": text}


def test_the_echo_is_replaced_by_the_turn_and_the_callers_results_follow() -> None:
    rome = handover("Rome")
    (call,) = rome.calls
    history = [QUESTION, echo(call), answer(call)]

    continued = continue_history(history, [rome])

    assert continued.messages == [QUESTION, *rome.turn, answer(call)]
    assert continued.continues_run_id == rome.run_id
    assert echoed_call_ids(history) == {call["id"]}


def test_calls_never_handed_over_are_the_callers_own_history() -> None:
    theirs = FunctionCall(id="call_1", name="get_weather", arguments="{}")
    history = [QUESTION, echo(theirs), answer(theirs)]
    continued = continue_history(history, [handover("Rome")])
    assert continued.messages == history and continued.continues_run_id is None


def test_each_echo_of_a_chain_gets_its_own_turn_and_the_latest_is_continued() -> None:
    rome, oslo = handover("Rome"), handover("Oslo")
    history = [QUESTION, echo(*rome.calls), answer(rome.calls[0])]
    history += [echo(*oslo.calls), answer(oslo.calls[0], "snow")]

    continued = continue_history(history, [oslo, rome])

    assert continued.messages == [
        QUESTION,
        *rome.turn,
        answer(rome.calls[0]),
        *oslo.turn,
        answer(oslo.calls[0], "snow"),
    ]
    assert continued.continues_run_id == oslo.run_id


@pytest.mark.parametrize("case", ["part of one response", "two responses in one", "unanswered"])
def test_what_cannot_be_made_whole_is_refused_naming_messages(case: str) -> None:
    both, other = handover("Rome", "Oslo"), handover("Lima")
    if case == "part of one response":
        history = [QUESTION, echo(both.calls[0]), answer(both.calls[0])]
    elif case == "two responses in one":
        calls = (*both.calls, *other.calls)
        history = [QUESTION, echo(*calls), *(answer(call) for call in calls)]
    else:
        history = [QUESTION, echo(*both.calls), answer(both.calls[0])]

    with pytest.raises(UnsupportedParameter) as refused:
        continue_history(history, [both, other])

    assert refused.value.param == "messages" and "messages[1]" in str(refused.value)
