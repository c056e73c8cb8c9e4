"""A run that hands the app's tool calls over keeps its turn, so the caller's next request
continues the conversation the lead was having — not a shorter one.

In ``router`` mode the lead may call our tools (specialists, exact tools) and the caller's in
the same run, even in the same response. Ours run here; the caller gets only its own calls, in
an assistant message it echoes in its next request, followed by its ``tool`` results. The
caller never saw our calls and their results, so its history lacks them: sent to the lead as
it is, the lead would forget what its specialist told it, and an assistant message whose
calls (ours among them) are not all answered is refused by OpenAI-style providers.

So the run keeps its turn (:class:`Handover`: every message the lead's loop made, ours and the
caller's calls, our results), keyed by the ids of the calls it handed over, which are ours
(:func:`new_call_id`: unique, so a follow-up names one run). A follow-up from the same owner
whose assistant message echoes exactly those calls gets the turn in its place
(:func:`continue_history`); the caller's ``tool`` messages then answer the caller's calls, and
the turn's own results answer ours. Ids we never handed over (another key's, another
provider's) are the caller's own history, taken as it is.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orchestrator.request import UnsupportedParameter
from specialists.backend import ChatMessage, FunctionCall


def new_call_id() -> str:
    """An id for a call handed over to the caller, in OpenAI's ``call_…`` form.

    Ours rather than the lead's: providers' ids need not be unique across runs (a scripted or
    local lead may number them), and a follow-up must name exactly one run."""
    return f"call_{uuid.uuid4().hex}"


@dataclass(frozen=True, slots=True)
class Handover:
    """A run's turn that ended in calls of the caller's tools."""

    run_id: str
    calls: tuple[FunctionCall, ...]
    """The calls the caller got (the run's ``app_tool_calls``), under our ids."""
    turn: tuple[ChatMessage, ...]
    """The run's turns as the lead made them: its assistant messages with every call (ours
    and the caller's), and our tools' results. The caller's calls are answered by the
    caller's next request, not here."""

    @property
    def call_ids(self) -> frozenset[str]:
        return frozenset(call["id"] for call in self.calls)


@dataclass(frozen=True, slots=True)
class Continuation:
    """A history with the turns of the runs it continues spliced back in."""

    messages: list[ChatMessage]
    continues_run_id: str | None
    """The latest run whose handed-over calls the history answers; ``None``: a first turn,
    or a history of calls we never handed over."""


def has_tool_turns(messages: Sequence[Mapping[str, object]]) -> bool:
    """Whether a history holds tool calls or tool results: only the lead can take those, and
    an answer that follows them rests on what the tools said (distillation leaves it out)."""
    return any(m.get("role") == "tool" or m.get("tool_calls") for m in messages)


def echoed_call_ids(messages: Sequence[ChatMessage]) -> set[str]:
    """The ids of every call the history's assistant messages carry: what to look up."""
    return {call["id"] for message in messages for call in message.get("tool_calls", ())}


def continue_history(
    messages: Sequence[ChatMessage], handovers: Sequence[Handover]
) -> Continuation:
    """``messages`` with each assistant message that echoes a handover's calls replaced by
    that handover's turn.

    Args:
        handovers: The runs (of the same owner) that handed over some of the calls the
            history's assistant messages carry.

    Raises:
        UnsupportedParameter: naming ``messages``: an assistant message carries part of one
            run's handed-over calls, or calls of several runs, or a handed-over call has no
            ``tool`` message answering it — the history cannot be made whole.
    """
    by_call = {call_id: handover for handover in handovers for call_id in handover.call_ids}
    history: list[ChatMessage] = []
    continued: Handover | None = None
    for index, message in enumerate(messages):
        ids = {call["id"] for call in message.get("tool_calls", ())}
        echoed = {by_call[call_id].run_id: by_call[call_id] for call_id in ids & by_call.keys()}
        if not echoed:
            history.append(message)
            continue
        handover = next(iter(echoed.values()))
        if len(echoed) > 1 or ids != handover.call_ids:
            raise UnsupportedParameter(
                "messages",
                f"messages[{index}] carries tool calls that Understudy returned, but not "
                "exactly those of one response; send each assistant message with the "
                "tool_calls it came back with",
            )
        _require_answers(handover, messages[index + 1 :], index)
        history.extend(handover.turn)
        continued = handover
    return Continuation(history, continued.run_id if continued else None)


def _require_answers(handover: Handover, after: Sequence[ChatMessage], index: int) -> None:
    """Every call handed over must be answered by a ``tool`` message after its echo, as
    OpenAI requires of every assistant message with ``tool_calls``.

    Raises:
        UnsupportedParameter: naming ``messages`` and the first unanswered call.
    """
    answered = {m.get("tool_call_id") for m in after if m["role"] == "tool"}
    for call in handover.calls:
        if call["id"] not in answered:
            raise UnsupportedParameter(
                "messages",
                f"the tool call {call['id']!r} ({call['name']}) in messages[{index}] has no "
                "tool message answering it",
            )
