"""Admit a chat request: the one check the chat API and batch validation both apply.

A request is admitted when its model is served (:func:`~serving.protocol.models.resolve_model`)
and it is within the :class:`~orchestrator.request.RequestLimits` — the same limits object the
orchestrator enforces on every run — so a body the API refuses is refused as a batch line with
the same status, code and message, and vice versa.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.app_tools import check_mode
from orchestrator.modes import Mode
from orchestrator.options import CallOptions
from orchestrator.request import InvalidRequest, RequestLimits, admit
from serving.protocol.errors import refusal
from serving.protocol.models import ServedModels, resolve_model
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
    mode, specialist = resolve_model(request.model, served, fallback=fallback)
    call_options = request.call_options()
    try:
        messages = admit(request.chat_messages(), limits, max_tokens=request.answer_tokens)
        check_mode(mode, call_options.tools, messages)
    except InvalidRequest as exc:
        raise refusal(exc) from exc
    options = request.understudy
    return ChatCall(
        request.model,
        mode,
        specialist,
        messages,
        call_options,
        options.on_degraded if options else None,
    )
