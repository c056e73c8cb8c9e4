"""How a caller wants an answer decoded: :class:`Sampling`, one value for every backend.

A request's sampling parameters (OpenAI's ``temperature``, ``top_p``, ``stop``, ``seed``, …)
travel as one ``Sampling`` from the protocol layer to the lead and to the specialist that
answers. ``None`` (or an empty value) means "the default": the specialist's own
:class:`~specialists.catalog.GenerationParams`, or the lead provider's. Backends say which
fields they honour (:attr:`SLMBackend.sampling_fields
<specialists.backend.SLMBackend.sampling_fields>`); a request setting another one is refused
before it runs, never decoded as if it had not been set.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from specialists.catalog import GenerationParams
from specialists.structured import ResponseFormat


@dataclass(frozen=True, slots=True)
class Sampling:
    """Decoding parameters of one answer. Hashable: the local backend batches by it."""

    max_tokens: int | None = None
    """Most tokens in the answer."""
    temperature: float | None = None
    """0 is greedy decoding."""
    top_p: float | None = None
    """Nucleus sampling mass (with a temperature above 0)."""
    stop: tuple[str, ...] = ()
    """The answer ends before the first of these strings; it is not part of the answer."""
    seed: int | None = None
    """Seeds sampling, for repeatable samples (best effort, as OpenAI's)."""
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: tuple[tuple[int, float], ...] = ()
    """(token id, bias) pairs, in the answering model's own vocabulary."""
    logprobs: bool = False
    """Return each answer token's log-probability."""
    top_logprobs: int = 0
    """With ``logprobs``: also the most likely alternatives at each position, this many."""
    response_format: ResponseFormat | None = None
    """The JSON the answer must be. A backend that cannot decode by it is still given the
    request (:data:`CHECKED_FIELDS`): its answer is checked instead."""

    def __post_init__(self) -> None:
        # Penalties of 0 are the defaults; clients that always send them have set nothing.
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name) == 0:
                object.__setattr__(self, name, None)

    @property
    def requested(self) -> tuple[str, ...]:
        """The fields this value sets, by name (the caller's choices, not defaults)."""
        return tuple(
            field.name
            for field in dataclasses.fields(self)
            if getattr(self, field.name) != field.default
        )

    def unsupported(self, supported: frozenset[str]) -> tuple[str, ...]:
        """The fields set here that a backend honouring ``supported`` would not (nor the
        orchestrator's check of the answer, :data:`CHECKED_FIELDS`)."""
        return tuple(name for name in self.requested if name not in supported | CHECKED_FIELDS)

    def restricted_to(self, supported: frozenset[str]) -> Sampling:
        """This value without the fields outside ``supported`` (their defaults instead)."""
        defaults = Sampling()
        dropped = (name for name in self.requested if name not in supported)
        return dataclasses.replace(self, **{name: getattr(defaults, name) for name in dropped})

    def over(self, defaults: GenerationParams) -> Sampling:
        """This value with the specialist's own defaults where it leaves a choice open, so
        :attr:`max_tokens`, :attr:`temperature` and :attr:`top_p` are set."""
        return dataclasses.replace(
            self,
            max_tokens=self.max_tokens or defaults.max_tokens,
            temperature=defaults.temperature if self.temperature is None else self.temperature,
            top_p=defaults.top_p if self.top_p is None else self.top_p,
        )


CHECKED_FIELDS = frozenset({"response_format"})
"""Fields honoured whatever the backend: the orchestrator checks every answer against them, so
a backend that cannot decode by them needs no refusal (its answer may be refused instead)."""


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """``text`` up to the first of the ``stop`` strings, and whether one was found."""
    ends = [index for index in (text.find(s) for s in stop if s) if index >= 0]
    if not ends:
        return text, False
    return text[: min(ends)], True
