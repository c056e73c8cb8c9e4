"""What a caller asks of an answer besides its messages: :class:`CallOptions`.

The protocol layer builds one from a request's OpenAI fields; the run hands its
:class:`~specialists.sampling.Sampling` to the specialist that answers and all of it to the lead
(:func:`orchestrator.lead.call_settings`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from orchestrator.app_tools import AppTools
from orchestrator.modes import Mode
from orchestrator.request import UnsupportedParameter
from specialists.backend import SLMBackend
from specialists.sampling import Sampling


@dataclass(frozen=True, slots=True)
class CallOptions:
    """A call's sampling, and who it is for (which only the lead takes)."""

    sampling: Sampling = field(default_factory=Sampling)
    user: str | None = None
    """The end user's id, passed to the lead provider (OpenAI's ``user``)."""
    metadata: Mapping[str, str] | None = None
    """Tags for the lead provider's own records (OpenAI's ``metadata``)."""
    tools: AppTools | None = None
    """The caller's own function tools, for the lead (:mod:`orchestrator.app_tools`)."""
    lead_share: float | None = None
    """Cascade's cost/quality knob: the target share of requests the lead answers, in
    ``[0, 1]``; the difficulty skip sends the prompts likeliest to be escalated straight to it
    (:mod:`orchestrator.difficulty`). ``None``: the orchestrator's default."""

    def __post_init__(self) -> None:
        if self.lead_share is not None and not 0.0 <= self.lead_share <= 1.0:
            raise ValueError(f"lead_share must be within [0, 1], got {self.lead_share}")


def check_lead_share(mode: Mode, options: CallOptions) -> None:
    """A lead share is cascade's knob alone: refused by name in every other mode.

    Raises:
        UnsupportedParameter: ``understudy.lead_share`` outside ``cascade``.
    """
    if options.lead_share is not None and mode is not Mode.cascade:
        raise UnsupportedParameter(
            "understudy.lead_share",
            f"it is cascade's knob (the difficulty skip), and mode {mode.value!r} has no "
            "specialist attempt to skip; use understudy-cascade",
        )


def check_options(mode: Mode, options: CallOptions, backend: SLMBackend) -> None:
    """Refuse, by name, what ``mode`` would otherwise drop.

    A specialist whose answer is the run's, in ``slm`` or ``cascade``, must honour every
    sampling field the caller set; a degraded run's fallback honours what its backend can (it
    is marked degraded). The lead takes every field (token logprobs included: a lead that
    answers without them fails, :meth:`LeadCall.ask <orchestrator.lead_call.LeadCall.ask>`).

    Raises:
        UnsupportedParameter: naming the first such field.
    """
    check_lead_share(mode, options)
    if mode in (Mode.slm, Mode.cascade):
        unsupported = options.sampling.unsupported(backend.sampling_fields)
        if unsupported:
            raise UnsupportedParameter(
                unsupported[0],
                f"the {backend.name} specialist backend does not apply it; "
                f"it applies {', '.join(sorted(backend.sampling_fields))}",
            )
