"""The one interface every SLM backend implements, and what a generation returns.

The orchestrator depends on :class:`SLMBackend` only; whether tokens come from an in-process
transformers model or from a vLLM server is a configuration choice.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NotRequired

# pydantic (evals' records hold run results) builds schemas of these only from this TypedDict
# on Python < 3.12.
from typing_extensions import TypedDict

from specialists.catalog import Specialist
from specialists.errors import SpecialistError
from specialists.sampling import Sampling


class FunctionCall(TypedDict):
    """A function call an assistant turn made (OpenAI's ``tool_calls[]``, flattened)."""

    id: str
    name: str
    arguments: str
    """The arguments as the model wrote them: a JSON string."""


class ChatMessage(TypedDict):
    """One OpenAI-style chat message.

    Tool turns (an assistant's ``tool_calls``, a ``tool`` result) appear only in histories the
    lead answers; specialists are never given them (:mod:`orchestrator.app_tools`).
    """

    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_calls: NotRequired[list[FunctionCall]]
    """An assistant turn's calls of the app's tools."""
    tool_call_id: NotRequired[str]
    """A ``tool`` turn's answer to that call."""


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token and the log-probability the model gave it."""

    token: str
    logprob: float
    top: tuple[TokenLogprob, ...] = ()
    """The most likely tokens at this position, best first, when they were asked for
    (:attr:`Sampling.top_logprobs <specialists.sampling.Sampling.top_logprobs>`)."""

    def openai(self, *, top: int | None = None) -> dict[str, Any]:
        """This token in OpenAI's ``logprobs.content[]`` shape, with at most ``top`` of its
        alternatives (all by default): what our API answers, and what a lead server sends."""
        alternatives = self.top if top is None else self.top[:top]
        return {**self._fields(), "top_logprobs": [alt._fields() for alt in alternatives]}

    def _fields(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "logprob": self.logprob,
            "bytes": list(self.token.encode("utf-8")),
        }


@dataclass(frozen=True, slots=True)
class Confidence:
    """How sure the model was of its own tokens.

    The mean catches answers that are vague throughout; the minimum catches one wild guess (a
    single wrong digit) inside otherwise fluent text. Both are kept so gates can use either.
    """

    mean_prob: float
    """Mean over tokens of exp(logprob)."""
    min_prob: float
    """Smallest exp(logprob) of any token."""

    @classmethod
    def from_logprobs(cls, logprobs: Sequence[TokenLogprob]) -> Confidence:
        """Confidence of a token sequence; an empty one has no evidence and scores 0."""
        if not logprobs:
            return cls(mean_prob=0.0, min_prob=0.0)
        probs = [math.exp(t.logprob) for t in logprobs]
        return cls(mean_prob=sum(probs) / len(probs), min_prob=min(probs))


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Generation:
    """A specialist's answer with everything needed to judge and account for it."""

    specialist: str
    text: str
    logprobs: tuple[TokenLogprob, ...]
    confidence: Confidence
    usage: Usage
    latency_s: float
    model: str
    """The served model name that answered (base alias or adapter name)."""
    finish_reason: str
    """``stop`` (end of answer) or ``length`` (cut at max_tokens)."""


class AdapterInUse(SpecialistError):
    """An adapter was to be unloaded while a generation (or a gate evaluation) still uses it."""

    def __init__(self, name: str, uses: int) -> None:
        self.uses = uses
        super().__init__(name, f"{uses} use(s) in flight; unloaded once they finish")


class AdapterUses:
    """How many uses of each served adapter name are in flight in this process.

    A use is a generation, or a holder such as a gate evaluation that needs the name loaded
    between its generations. A superseded name is unloaded only at zero
    (:meth:`SLMBackend.unload_adapter`), so no run still generating with it loses it. Counted on
    the event loop's thread (every backend's ``generate`` enters here before it awaits).
    """

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    @contextlib.contextmanager
    def hold(self, name: str) -> Iterator[None]:
        """Count one use of ``name`` for the block's duration."""
        self._counts[name] += 1
        try:
            yield
        finally:
            self._counts[name] -= 1
            if not self._counts[name]:
                del self._counts[name]

    def count(self, name: str) -> int:
        """Uses of ``name`` in flight now."""
        return self._counts[name]


class SLMBackend(abc.ABC):
    """Generates specialist answers. Implementations must be safe under concurrent calls."""

    name: str
    """``local`` or ``vllm``; shown in CLI output and metrics."""
    sampling_fields: frozenset[str] = frozenset({"max_tokens", "temperature", "top_p"})
    """The :class:`Sampling` fields this backend honours; callers refuse the others."""

    @abc.abstractmethod
    async def generate(
        self,
        specialist: Specialist,
        messages: Sequence[ChatMessage],
        *,
        sampling: Sampling | None = None,
    ) -> Generation:
        """Answer ``messages`` as ``specialist``; its system prompt is prepended here.

        ``sampling`` overrides the specialist's own generation parameters where it sets them;
        it must set only :attr:`sampling_fields`.

        Raises:
            SpecialistUnavailable: the backend could not answer within its timeout budget, or
                is shutting down.
            PromptTooLong: this request does not fit the model (requests beside it still do).
            SpecialistError: the request was refused (unknown adapter, …).
        """

    @abc.abstractmethod
    async def load_adapter(self, name: str, path: Path) -> None:
        """Make a LoRA adapter usable under ``name`` without a restart.

        ``name`` is a served name (:func:`~specialists.adapters.served_adapter_name`), which
        stands for one set of weights: a name loaded already is kept as it is, never reloaded.
        """

    @abc.abstractmethod
    async def unload_adapter(self, name: str) -> None:
        """Stop serving the adapter ``name`` and free what it holds.

        Idempotent: a name that is not loaded (never was, or another process unloaded it from
        a shared server) is no error.

        Raises:
            AdapterInUse: A use of ``name`` is in flight here (:attr:`adapter_uses`).
            SpecialistError: The backend refused or could not be reached; try again later.
        """

    @abc.abstractmethod
    async def loaded_adapters(self) -> set[str]:
        """The adapter names the backend serves now (a shared server's: every process's).

        Raises:
            SpecialistError: The backend could not be reached.
        """

    @functools.cached_property
    def adapter_uses(self) -> AdapterUses:
        """The uses of each adapter name in flight in this process: what unloading waits for."""
        return AdapterUses()

    def _refuse_if_used(self, name: str) -> None:
        uses = self.adapter_uses.count(name)
        if uses:
            raise AdapterInUse(name, uses)

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections, threads or models."""


def with_system_prompt(
    specialist: Specialist, messages: Sequence[ChatMessage]
) -> list[ChatMessage]:
    """The conversation as the model sees it: the specialist's system prompt first.

    A system message the caller sent is kept after it, so callers can add context without
    replacing the specialist's instructions.
    """
    return [{"role": "system", "content": specialist.system_prompt}, *messages]
