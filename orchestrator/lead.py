"""The lead model: any LiteLLM model, or any OpenAI-compatible server by base URL.

Keys are handed to the client and nowhere else: :class:`LeadConfig` hides them from ``repr``,
and nothing here logs them. When the lead fails, :func:`lead_failed` says how, as a
:class:`~orchestrator.outcome.FailureKind`, from the exception's type and status code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import openai
from agents import Model, ModelSettings, OpenAIChatCompletionsModel
from agents.exceptions import MaxTurnsExceeded, ModelBehaviorError
from openai import AsyncOpenAI, Timeout

from orchestrator.budget import TokenBudgetExceeded
from orchestrator.options import CallOptions
from orchestrator.outcome import Failure, FailureKind
from specialists.errors import ConfigurationError, UnderstudyError


@dataclass(frozen=True, slots=True)
class LeadConfig:
    """How to reach the lead."""

    model: str | None
    """LiteLLM name (``openai/gpt-4o-mini``) or, with ``base_url``, the served model name."""
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 60.0
    """Deadline of one lead call."""
    max_retries: int = 3
    """Retries with exponential backoff on connection errors, 429 and 5xx."""

    @property
    def configured(self) -> bool:
        return bool(self.model or self.base_url)

    @property
    def display_name(self) -> str:
        return self.model or "default"


class LeadFailed(UnderstudyError):
    """The lead gave no answer (down, rate-limited, timed out, refused, over budget) after its
    client's retries.

    Args:
        failure: How it failed, and the message for people.
    """

    def __init__(self, failure: Failure) -> None:
        self.failure = failure
        super().__init__(failure.message)


LEAD_FAILURES = (
    openai.APIError,
    httpx.HTTPError,
    MaxTurnsExceeded,
    ModelBehaviorError,
    TimeoutError,
    TokenBudgetExceeded,
)
"""What a lead call (the agent loop around it included) raises when the lead fails: these become
:class:`LeadFailed`; anything else is a bug and propagates."""


def lead_failed(exc: BaseException, lead_name: str) -> LeadFailed:
    """``exc``, one of :data:`LEAD_FAILURES`, as the lead's typed failure."""
    return LeadFailed(Failure(_failure_kind(exc), f"lead {lead_name} failed: {_describe(exc)}"))


def _failure_kind(exc: BaseException) -> FailureKind:
    if isinstance(exc, MaxTurnsExceeded | TokenBudgetExceeded):
        return FailureKind.budget_exhausted
    if isinstance(exc, ModelBehaviorError):
        return FailureKind.lead_invalid_output
    if isinstance(exc, TimeoutError | openai.APITimeoutError | httpx.TimeoutException):
        return FailureKind.lead_timeout
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status == 429:
            return FailureKind.lead_rate_limited
        if status == 408:
            return FailureKind.lead_timeout
        if 400 <= status < 500 and status != 409:  # 409: a conflict the provider says to retry
            return FailureKind.lead_refused
    return FailureKind.lead_unavailable


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "the run's time budget ran out"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


def require_lead(config: LeadConfig | None, mode: str) -> LeadConfig:
    """The lead config, or an error that says exactly what to set."""
    if config is None or not config.configured:
        raise ConfigurationError(
            f"mode {mode!r} needs a lead model, and none is configured; set "
            "UNDERSTUDY_LEAD_MODEL (a LiteLLM name such as openai/gpt-4o-mini, with the "
            "provider's key in its usual variable or UNDERSTUDY_LEAD_API_KEY) or "
            "UNDERSTUDY_LEAD_BASE_URL (an OpenAI-compatible server); mode 'slm' needs neither",
            setting="UNDERSTUDY_LEAD_MODEL",
        )
    return config


def build_lead_model(config: LeadConfig) -> Model:
    """An openai-agents model object for the lead (never a bare name: names with '/' would
    be misread as provider prefixes by the SDK's default provider)."""
    if config.base_url:
        client = AsyncOpenAI(
            base_url=config.base_url,
            api_key=config.api_key or "not-needed",
            timeout=Timeout(config.timeout_s, connect=min(5.0, config.timeout_s)),
            max_retries=config.max_retries,
        )
        return OpenAIChatCompletionsModel(model=config.display_name, openai_client=client)
    from agents.extensions.models.litellm_model import LitellmModel

    return LitellmModel(model=config.display_name, api_key=config.api_key)


def lead_model_settings(config: LeadConfig, *, max_tokens: int | None = None) -> ModelSettings:
    """Per-call settings; LiteLLM takes its timeout and retries through ``extra_args``."""
    extra = (
        None
        if config.base_url
        else {"timeout": config.timeout_s, "num_retries": config.max_retries}
    )
    return ModelSettings(max_tokens=max_tokens, include_usage=True, extra_args=extra)


def call_settings(options: CallOptions) -> ModelSettings | None:
    """The settings one run's lead calls add to :func:`lead_model_settings`: the caller's
    sampling and attribution. OpenAI fields ``ModelSettings`` has no slot for go through
    ``extra_args``, which both the Chat Completions and the LiteLLM model send as they are.
    ``None`` when the caller chose nothing.

    ``response_format`` goes in ``extra_body``: both models send it into the request body as it
    is, where ``extra_args`` would collide with the LiteLLM model's own ``response_format``
    argument. The answer is checked against it afterwards either way (``RunState``).

    ``logprobs`` goes as ``top_logprobs`` (0 when no alternatives are asked for): the SDK then
    asks for ``logprobs`` too and hands back the answer's, in its text items
    (:func:`orchestrator.lead_text.last_message`)."""
    sampling = options.sampling
    extra = {
        name: value
        for name, value in (
            ("seed", sampling.seed),
            ("stop", list(sampling.stop) or None),
            ("logit_bias", {str(t): b for t, b in sampling.logit_bias} or None),
            ("user", options.user),
        )
        if value is not None
    }
    settings = ModelSettings(
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        presence_penalty=sampling.presence_penalty,
        frequency_penalty=sampling.frequency_penalty,
        max_tokens=sampling.max_tokens,
        top_logprobs=sampling.top_logprobs if sampling.logprobs else None,
        metadata=dict(options.metadata) if options.metadata else None,
        extra_args=extra or None,
        extra_body=_response_format_body(options),
    )
    return settings if settings != ModelSettings() else None


def _response_format_body(options: CallOptions) -> dict[str, object] | None:
    fmt = options.sampling.response_format
    return None if fmt is None else {"response_format": fmt.openai()}
