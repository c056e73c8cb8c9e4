"""The LLM judge: one async method, so any model (or a scripted one in tests) can grade.

Two implementations, reached as the lead is: :class:`OpenAIJudge` talks to any OpenAI-compatible
chat endpoint by base URL (vLLM, a LiteLLM proxy, :class:`orchestrator.testing.ScriptedLead`);
:class:`LiteLLMJudge` to any provider by LiteLLM name (``openai/gpt-4o``,
``anthropic/claude-…``). Both ask deterministically (temperature 0, as MT-Bench does), retry
connection errors, 429 and 5xx with backoff, and turn what still fails into
:class:`~evals.errors.JudgeError`. The API key goes to the client and nowhere else: not into
``repr``, error messages or logs.
"""

from __future__ import annotations

from typing import Protocol

import openai
from openai import AsyncOpenAI

from evals.errors import JudgeError

JUDGE_MAX_TOKENS = 2048
"""As FastChat asks GPT-4 for single-answer grading."""


class Judge(Protocol):
    """Anything that can answer a chat as a judge."""

    @property
    def label(self) -> str:
        """Which model judged, and where it ran (written into the report)."""
        ...

    async def complete(self, messages: list[dict[str, str]]) -> str:
        """The judge model's reply text to ``messages``."""
        ...

    async def aclose(self) -> None:
        """Release connections; the judge is not used afterwards."""
        ...


class OpenAIJudge:
    """A judge behind an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        model: The served model name (``gpt-4o``, the name a vLLM server was started with, …).
        base_url: The API root (``http://127.0.0.1:8001/v1``); ``None`` is OpenAI's.
        api_key: The endpoint's key; keyless local servers need none.
        timeout_s: Deadline of one call.
        max_retries: Retries with exponential backoff on connection errors, 429 and 5xx.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 3,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self._client = AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or "not-needed",
            timeout=openai.Timeout(timeout_s, connect=min(5.0, timeout_s)),
            max_retries=max_retries,
        )

    def __repr__(self) -> str:
        return f"OpenAIJudge(model={self.model!r}, base_url={self.base_url!r})"

    @property
    def label(self) -> str:
        return f"{self.model} at {self.base_url or 'OpenAI'}"

    async def complete(self, messages: list[dict[str, str]]) -> str:
        try:
            response = await self._client.chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                temperature=0.0,
                max_tokens=JUDGE_MAX_TOKENS,
            )
        except openai.APIError as exc:
            raise JudgeError(f"judge {self.model!r} failed: {_describe(exc)}") from exc
        content = response.choices[0].message.content if response.choices else None
        if not content:
            raise JudgeError(f"judge {self.model!r} returned an empty reply")
        return content

    async def aclose(self) -> None:
        await self._client.close()


class LiteLLMJudge:
    """A judge reached through LiteLLM by provider-prefixed name (``openai/gpt-4o``); the
    provider's key is ``api_key`` or, when that is ``None``, LiteLLM's usual variable."""

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 3,
    ) -> None:
        self.model = model
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._max_retries = max_retries

    def __repr__(self) -> str:
        return f"LiteLLMJudge(model={self.model!r})"

    @property
    def label(self) -> str:
        return f"{self.model} via LiteLLM"

    async def aclose(self) -> None:
        """Nothing to release: LiteLLM keeps its own clients."""

    async def complete(self, messages: list[dict[str, str]]) -> str:
        import litellm  # a second to import; only judge runs need it

        try:
            response = await litellm.acompletion(
                model=self.model,
                messages=messages,
                temperature=0.0,
                max_tokens=JUDGE_MAX_TOKENS,
                api_key=self._api_key,
                timeout=self._timeout_s,
                num_retries=self._max_retries,
            )
        except openai.APIError as exc:  # LiteLLM's errors derive from OpenAI's
            raise JudgeError(f"judge {self.model!r} failed: {_describe(exc)}") from exc
        content = response.choices[0].message.content if response.choices else None
        if not content:
            raise JudgeError(f"judge {self.model!r} returned an empty reply")
        return content


def build_judge(
    *, model: str | None, base_url: str | None = None, api_key: str | None = None
) -> Judge:
    """The judge for the settings' judge fields: by base URL when one is given (the model name
    sent is then ``model``, or ``default`` as for the lead), else by LiteLLM name."""
    if base_url:
        return OpenAIJudge(model or "default", base_url=base_url, api_key=api_key)
    if model:
        return LiteLLMJudge(model, api_key=api_key)
    raise JudgeError("no judge configured: give a judge model, a judge base URL, or both")


def _describe(exc: openai.APIError) -> str:
    """Status and message, never the request (whose headers hold the key)."""
    status = getattr(exc, "status_code", None)
    return f"HTTP {status}: {exc.message}" if status else exc.message
