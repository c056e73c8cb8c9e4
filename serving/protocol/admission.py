"""Admit a chat request: the one check the chat API and batch validation both apply.

A request is admitted when its model is served (:func:`~serving.protocol.models.resolve_model`)
and it is within the :class:`~orchestrator.request.RequestLimits` — the same limits object the
orchestrator enforces on every run — so a body the API refuses is refused as a batch line with
the same status, code and message, and vice versa.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from orchestrator.app_tools import check_mode
from orchestrator.modes import Mode
from orchestrator.options import CallOptions, check_lead_share
from orchestrator.request import InvalidRequest, RequestLimits, admit
from serving.protocol.errors import ProtocolError, refusal
from serving.protocol.models import ServedModels, resolve_model, split_lead_share
from serving.protocol.requests import ChatCompletionRequest, OnDegraded
from specialists.backend import ChatMessage


@dataclass(frozen=True, slots=True)
class ChatCall:
    """An admitted chat request, as the orchestrator is asked it."""

    model: str
    """The model name the request gave (replies carry it back)."""
    mode: Mode
    specialist: str | None
    messages: list[ChatMessage]
    options: CallOptions
    """Sampling (``max_tokens`` included) and attribution."""
    on_degraded: OnDegraded | None
    """The request's degradation policy; ``None``: the server's default."""


def admit_chat_request(
    request: ChatCompletionRequest,
    served: ServedModels,
    limits: RequestLimits,
    *,
    fallback: Mode | None = None,
) -> ChatCall:
    """``request`` as the orchestrator's call, once its model and size are acceptable.

    Args:
        fallback: The mode of model names that are not Understudy's (a batch job's mode);
            ``None`` refuses them.

    Raises:
        ProtocolError: 404 ``model_not_found``; 400 ``too_many_messages`` or
            ``max_tokens_too_large``; 413 ``request_too_large``; 400 ``invalid_request``; 400
            ``unsupported_parameter`` for the app's tools in ``slm`` mode.
    """
    options = request.understudy
    return admit_call(
        request.model,
        request.chat_messages(),
        request.call_options(),
        options.on_degraded if options else None,
        served,
        limits,
        fallback=fallback,
    )


def with_model_lead_share(model: str, options: CallOptions) -> CallOptions:
    """``options`` with the lead share a model name carries (``understudy-cascade-0.3``).

    Raises:
        ProtocolError: 400 when the name and ``understudy.lead_share`` ask different shares.
    """
    share = split_lead_share(model)[1]
    if share is None:
        return options
    if options.lead_share is not None and options.lead_share != share:
        raise ProtocolError(
            400,
            "conflicting_lead_share",
            f"model {model!r} asks a lead share of {share} and understudy.lead_share asks "
            f"{options.lead_share}; give one",
            param="understudy.lead_share",
        )
    return replace(options, lead_share=share)


def admit_call(
    model: str,
    messages: list[ChatMessage],
    options: CallOptions,
    on_degraded: OnDegraded | None,
    served: ServedModels,
    limits: RequestLimits,
    *,
    fallback: Mode | None = None,
) -> ChatCall:
    """A call of ``model`` with ``messages`` and ``options``, once the model is served and the
    call is within ``limits`` — the check of every request shape (chat, Responses) alike.

    Raises:
        ProtocolError: as :func:`admit_chat_request`.
    """
    mode, specialist = resolve_model(model, served, fallback=fallback)
    options = with_model_lead_share(model, options)
    try:
        admitted = admit(messages, limits, max_tokens=options.sampling.max_tokens)
        check_mode(mode, options.tools, admitted)
        check_lead_share(mode, options)
    except InvalidRequest as exc:
        raise refusal(exc) from exc
    return ChatCall(model, mode, specialist, admitted, options, on_degraded)
