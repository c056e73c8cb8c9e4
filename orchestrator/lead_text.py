"""What the lead wrote in its last turn, and the token logprobs it sent with it.

The agents SDK keeps each lead call's output as Responses-style items; its Chat Completions and
LiteLLM models attach the logprobs a call asked for (``ModelSettings.top_logprobs``) to the
text parts of the message items, whole or streamed. The run's answer is the last turn's last
message: its text, or the text the lead wrote beside the app's tool calls in that turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agents import ModelResponse
from openai.types.responses import ResponseOutputMessage, ResponseOutputText
from openai.types.responses.response_output_text import Logprob

from specialists.backend import TokenLogprob


@dataclass(frozen=True, slots=True)
class LeadText:
    """The lead's last message in a run."""

    text: str
    logprobs: tuple[TokenLogprob, ...] | None
    """Its tokens' logprobs; ``None`` when the lead sent none (not asked, or not given)."""


def last_message(responses: Sequence[ModelResponse]) -> LeadText:
    """The last message of the lead's last turn (``responses``: one per lead call, in order),
    empty when that turn wrote none."""
    output = responses[-1].output if responses else []
    messages = [item for item in output if isinstance(item, ResponseOutputMessage)]
    content = messages[-1].content if messages else []
    parts = [part for part in content if isinstance(part, ResponseOutputText)]
    text = "".join(part.text or "" for part in parts)
    if not any(part.logprobs for part in parts):
        return LeadText(text, None)
    return LeadText(text, tuple(_token(entry) for part in parts for entry in part.logprobs or ()))


def _token(entry: Logprob) -> TokenLogprob:
    return TokenLogprob(
        entry.token,
        entry.logprob,
        tuple(TokenLogprob(alt.token, alt.logprob) for alt in entry.top_logprobs),
    )
