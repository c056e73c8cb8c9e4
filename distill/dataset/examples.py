"""From one transcript to one training example, or the reason there is none.

A specialist should learn what the lead *verified*, not what it said itself, so each kind of run
teaches something different:

- ``correction``: the cascade rejected the specialist's draft and the lead answered;
- ``delegation``: the lead sent the specialist a task and answered after seeing its reply
  (its verified answer, or its correction);
- ``confirmed``: the specialist answered alone and a user's positive feedback confirmed it;
- ``lead``: a run the lead answered without the specialist, picked by id (a proposal's cluster).

A turn of a conversation with the app's own tools teaches nothing: its answer rests on tool
results a specialist never sees (a run that hands tool calls over has no answer at all).

The user turn is what the specialist is sent in production: the lead's delegated task when there
is one, else the user's own request.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from distill.transcripts import Transcript
from orchestrator.handover import has_tool_turns
from specialists.validators import get_validator

SPECIALIST_ALONE_ROUTES = ("slm:", "cascade:accepted:")
"""Routes whose answer is the specialist's own, unchecked by the lead."""


class Rejection(StrEnum):
    """Why a transcript gave no example; the dataset card counts each."""

    NOT_SELECTED = "not_selected"
    """Not this specialist's run (it was not consulted, or the run is not in the chosen set)."""
    FAILED = "failed"
    """The run errored, degraded to a fallback answer, or has no answer."""
    TOOL_CONVERSATION = "tool_conversation"
    """A turn of a conversation with the app's own tools (tool calls or results in its input):
    its answer rests on what those tools said, which a specialist is never given."""
    NEGATIVE_FEEDBACK = "negative_feedback"
    """A user judged the answer wrong."""
    UNVERIFIED = "unverified"
    """The specialist answered alone and nobody confirmed it: nothing new to learn."""
    TOO_LONG = "too_long"
    """Longer than the dataset's character limit."""
    VALIDATOR = "validator"
    """The answer fails the specialist's output validator."""
    DUPLICATE = "duplicate"
    """The same request and answer (after normalisation) as an earlier example."""
    NEAR_DUPLICATE = "near_duplicate"
    """Nearly the same request and answer as an earlier example."""


class Source(StrEnum):
    """What kind of run an example came from (see the module docstring)."""

    CORRECTION = "correction"
    DELEGATION = "delegation"
    CONFIRMED = "confirmed"
    LEAD = "lead"


@dataclass(frozen=True, slots=True)
class DistillTarget:
    """The specialist a dataset teaches."""

    name: str
    """Specialist name; the dataset and the adapter are filed under it."""
    system_prompt: str
    """The system turn of every example: what the specialist is served with."""
    validator: str = "nonempty"
    """Output validator (``specialists.validators``) every answer must pass."""
    run_ids: frozenset[str] | None = None
    """Only these runs (a proposal's cluster); ``None``: every run that consulted ``name``."""

    def __post_init__(self) -> None:
        get_validator(self.validator)  # an unknown name fails here, before any transcript is read


@dataclass(frozen=True, slots=True)
class Example:
    """One supervised chat example: system, user, assistant."""

    run_id: str
    source: Source
    system: str
    user: str
    assistant: str

    def messages(self) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self.user},
            {"role": "assistant", "content": self.assistant},
        ]


def extract_example(
    transcript: Transcript, target: DistillTarget, *, max_chars: int
) -> Example | Rejection:
    """The example ``transcript`` teaches ``target``, or why it teaches nothing."""
    if not _selected(transcript, target):
        return Rejection.NOT_SELECTED
    answer = (transcript.answer or "").strip()
    if transcript.error or transcript.degraded or not answer:
        return Rejection.FAILED
    if has_tool_turns(transcript.input_messages):
        return Rejection.TOOL_CONVERSATION
    if any(score < 0 for score in transcript.feedback):
        return Rejection.NEGATIVE_FEEDBACK
    source = _source(transcript, target)
    if source is None:
        return Rejection.UNVERIFIED
    user = _delegated_request(transcript, target) or transcript.query.strip()
    if not user:
        return Rejection.FAILED
    if len(user) + len(answer) + len(target.system_prompt) > max_chars:
        return Rejection.TOO_LONG
    if not get_validator(target.validator)(answer).ok:
        return Rejection.VALIDATOR
    return Example(transcript.run_id, source, target.system_prompt, user, answer)


def _selected(transcript: Transcript, target: DistillTarget) -> bool:
    if target.run_ids is not None:
        return transcript.run_id in target.run_ids
    return target.name in transcript.specialists


def _source(transcript: Transcript, target: DistillTarget) -> Source | None:
    """Who vouches for the answer; ``None`` when nobody does."""
    if transcript.route.startswith(SPECIALIST_ALONE_ROUTES):
        return Source.CONFIRMED if any(score > 0 for score in transcript.feedback) else None
    if transcript.escalated and transcript.route.endswith(f":{target.name}"):
        return Source.CORRECTION
    if _delegated_request(transcript, target):
        return Source.DELEGATION
    return Source.LEAD


def _delegated_request(transcript: Transcript, target: DistillTarget) -> str:
    """The task the specialist was last sent in this run ('' when it was sent none).

    The last one, because a lead that re-asks refines the task, and its answer follows that.
    """
    for call in reversed(transcript.tool_calls):
        request = call.input.get("request") if call.specialist == target.name else None
        if isinstance(request, str) and request.strip():
            return request.strip()
    return ""
