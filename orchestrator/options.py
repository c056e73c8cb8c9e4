"""What a caller asks of an answer besides its messages: :class:`CallOptions`.

The protocol layer builds one from a request's OpenAI fields; the run hands its
:class:`~specialists.sampling.Sampling` to the specialist that answers and all of it to the lead
(:func:`orchestrator.lead.call_settings`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from orchestrator.app_tools import AppTools
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
