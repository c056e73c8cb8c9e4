"""The vLLM backend: OpenAI-compatible HTTP to a vLLM server hosting one base and many LoRAs.

The adapter is picked by the request's ``model`` field: vLLM serves each LoRA under its own
served name (``math@v3-1f2e3d4c``), never reloaded in place. Every call has one deadline covering
connection, retries and generation: connect errors, dropped connections and 5xx are retried with
jittered exponential backoff (tenacity) while the deadline allows, then
:class:`SpecialistUnavailable` is raised. A call never hangs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterable, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from specialists.adapters import served_adapter_name
from specialists.backend import (
    ChatMessage,
    Confidence,
    Generation,
    SLMBackend,
    TokenLogprob,
    Usage,
    with_system_prompt,
)
from specialists.catalog import Specialist
from specialists.errors import AdaptersNotServed, SpecialistError, SpecialistUnavailable
from specialists.sampling import Sampling

_RETRYABLE = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.RemoteProtocolError,
)


class _ServerError(Exception):
    """A 5xx reply: the server is up but failing, worth another try."""

    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        super().__init__(f"HTTP {response.status_code}: {_error_message(response)}")


class ServerRefused(SpecialistError):
    """The server answered a 4xx: it refused this request (retrying it would not help)."""

    def __init__(self, specialist: str, reason: str, *, status_code: int) -> None:
        self.status_code = status_code
        super().__init__(specialist, reason)


class VLLMBackend(SLMBackend):
    """Talks to ``vllm serve`` (or any OpenAI-compatible server that returns logprobs).

    Args:
        base_url: The server's OpenAI root, e.g. ``http://127.0.0.1:8000/v1``.
        base_model_name: The served name of the base model (used by specialists without adapter).
        api_key: Sent as a bearer token when the server requires one.
        timeout_s: Deadline of one whole call, retries included.
        connect_timeout_s: Deadline of one connection attempt.
        max_retries: Extra attempts after a retryable failure.
        transport: An httpx transport (tests, or custom networking).
    """

    name = "vllm"
    sampling_fields = frozenset(field.name for field in dataclasses.fields(Sampling))
    """All of them: vLLM's OpenAI API takes each, under OpenAI's name."""

    def __init__(
        self,
        base_url: str,
        *,
        base_model_name: str,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 3.0,
        max_retries: int = 2,
        max_connections: int = 256,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.base_model_name = base_model_name
        self._timeout_s = timeout_s
        self._max_retries = max_retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(connect_timeout_s, timeout_s)),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
        )

    def served_name(self, specialist: Specialist) -> str:
        """The ``model`` a request for ``specialist`` names: its adapter's versioned name
        (``math@v3-1f2e3d4c``), else the base."""
        if specialist.adapter is None:
            return self.base_model_name
        return served_adapter_name(specialist)

    async def generate(
        self,
        specialist: Specialist,
        messages: Sequence[ChatMessage],
        *,
        sampling: Sampling | None = None,
    ) -> Generation:
        settled = (sampling or Sampling()).over(specialist.generation)
        payload: dict[str, Any] = {
            "model": self.served_name(specialist),
            "messages": with_system_prompt(specialist, messages),
            **_sampling_payload(settled),
            "logprobs": True,  # always: confidence is computed from them
        }
        started = time.perf_counter()
        with self.adapter_uses.hold(payload["model"]):
            response = await self._post(specialist.name, "/chat/completions", payload, started)
        return _parse_generation(specialist.name, response, time.perf_counter() - started)

    async def load_adapter(self, name: str, path: Path) -> None:
        """Register a LoRA on the running server (needs ``VLLM_ALLOW_RUNTIME_LORA_UPDATING``).

        ``name`` is a served name, which stands for one set of weights: a name the server
        serves already is left as it is (never reloaded in place), whoever loaded it first.
        """
        if name in await self.served_models():
            return
        payload = {"lora_name": name, "lora_path": str(path.resolve())}
        try:
            await self._post(name, "/load_lora_adapter", payload, time.perf_counter())
        except SpecialistError:
            if name in await self.served_models():
                return  # another process loaded it meanwhile
            raise

    async def require_adapters(self, catalog: Iterable[Specialist]) -> None:
        """Raise :class:`AdaptersNotServed` unless the server serves every adapter of
        ``catalog`` (readiness); raises as :meth:`served_models` if it is unreachable."""
        missing = await self.missing_adapters(catalog)
        if missing:
            raise AdaptersNotServed(missing, f"vLLM at {self.base_url}")

    async def missing_adapters(self, catalog: Iterable[Specialist]) -> dict[str, str]:
        """The served name of each specialist in ``catalog`` whose adapter the server does
        not serve (after a restart, say), by specialist; raises if it is unreachable."""
        served = set(await self.served_models())
        return {
            specialist.name: name
            for specialist in catalog
            if specialist.adapter is not None
            and (name := self.served_name(specialist)) not in served
        }

    async def unload_adapter(self, name: str) -> None:
        """Remove a LoRA from the running server, unless this process still uses it.

        A server shared by several processes may have unloaded it already: its 404 is no error.
        """
        self._refuse_if_used(name)
        try:
            await self._post(name, "/unload_lora_adapter", {"lora_name": name}, time.perf_counter())
        except ServerRefused as exc:
            if exc.status_code != HTTPStatus.NOT_FOUND:
                raise

    async def loaded_adapters(self) -> set[str]:
        """The adapters the server serves (every process's): its models but the base."""
        return set(await self.served_models()) - {self.base_model_name}

    async def served_models(self) -> list[str]:
        """Names the server answers to (base and adapters); raises if it is unreachable."""
        response = await self._request("models", "GET", "/models", None, time.perf_counter())
        return [entry["id"] for entry in response.json().get("data", [])]

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _post(
        self, specialist: str, path: str, payload: dict[str, Any], started: float
    ) -> httpx.Response:
        return await self._request(specialist, "POST", path, payload, started)

    async def _request(
        self,
        specialist: str,
        method: str,
        path: str,
        payload: dict[str, Any] | None,
        started: float,
    ) -> httpx.Response:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((*_RETRYABLE, _ServerError)),
            stop=stop_after_attempt(self._max_retries + 1),
            wait=wait_exponential_jitter(multiplier=0.1, max=2.0),
            reraise=True,
        )
        try:
            async with asyncio.timeout(self._timeout_s):
                async for attempt in retrying:
                    with attempt:
                        response = await self._client.request(method, path, json=payload)
                        if response.status_code >= 500:
                            raise _ServerError(response)
        except TimeoutError as exc:
            raise SpecialistUnavailable(
                specialist,
                f"no answer from {self.base_url} within {self._timeout_s}s",
                elapsed_s=time.perf_counter() - started,
            ) from exc
        except (httpx.TransportError, _ServerError) as exc:
            raise SpecialistUnavailable(
                specialist,
                f"{self.base_url}: {exc or type(exc).__name__}",
                elapsed_s=time.perf_counter() - started,
            ) from exc
        if response.status_code >= 400:
            raise ServerRefused(
                specialist,
                f"HTTP {response.status_code} from {self.base_url}{path}: "
                f"{_error_message(response)}",
                status_code=response.status_code,
            )
        return response


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("message", error))[:300]
        return str(error)[:300]
    return str(body)[:300]


_SCALARS = ("max_tokens", "temperature", "top_p", "seed", "presence_penalty", "frequency_penalty")
"""Sampling fields that go to vLLM as they are, under the same name."""


def _sampling_payload(sampling: Sampling) -> dict[str, Any]:
    """``sampling``'s fields that are set, as OpenAI request fields."""
    payload: dict[str, Any] = {
        name: getattr(sampling, name) for name in _SCALARS if getattr(sampling, name) is not None
    }
    if sampling.stop:
        payload["stop"] = list(sampling.stop)
    if sampling.logit_bias:
        payload["logit_bias"] = {str(token): bias for token, bias in sampling.logit_bias}
    if sampling.top_logprobs:
        payload["top_logprobs"] = sampling.top_logprobs
    if sampling.response_format is not None:  # vLLM's structured outputs (guided decoding)
        payload["response_format"] = sampling.response_format.openai()
    return payload


def _token_logprob(entry: dict[str, Any]) -> TokenLogprob:
    alternatives = entry.get("top_logprobs") or []
    return TokenLogprob(
        entry["token"],
        float(entry["logprob"]),
        tuple(TokenLogprob(alt["token"], float(alt["logprob"])) for alt in alternatives),
    )


def _parse_generation(specialist: str, response: httpx.Response, latency_s: float) -> Generation:
    try:
        body = response.json()
        choice = body["choices"][0]
        content = choice["message"].get("content") or ""
        entries = (choice.get("logprobs") or {}).get("content") or []
        logprobs = tuple(_token_logprob(entry) for entry in entries)
        usage = body.get("usage") or {}
        return Generation(
            specialist=specialist,
            text=content.strip(),
            logprobs=logprobs,
            confidence=Confidence.from_logprobs(logprobs),
            usage=Usage(
                prompt_tokens=int(usage.get("prompt_tokens", 0)),
                completion_tokens=int(usage.get("completion_tokens", len(logprobs))),
            ),
            latency_s=latency_s,
            model=str(body.get("model", "")),
            finish_reason=str(choice.get("finish_reason") or "stop"),
        )
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise SpecialistError(specialist, f"malformed reply: {exc!r}") from exc
