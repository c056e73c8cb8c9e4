"""A gate every lead call passes: where provider limits (concurrency, requests and tokens per
minute) are enforced for bulk work such as batch jobs.

The gate wraps the lead *model*, below the agents SDK's run loop, so it sees each HTTP call to
the provider — a router run may make several — and is released even when a call fails. What the
limits are and how they are shared between processes is the caller's business (see
``serving/batch/limiter.py``); the orchestrator only knows this protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from agents import Model
from agents.models.interface import ModelResponse


class LeadTicket(Protocol):
    """A call admitted through the gate; told what the call really used."""

    def used(self, tokens: int) -> None: ...


class LeadGate(Protocol):
    """Admits lead calls, waiting while a limit is reached."""

    def call(self, estimated_tokens: int) -> AbstractAsyncContextManager[LeadTicket]:
        """Wait for admission of a call that will use about ``estimated_tokens``; the context
        lasts for the call."""
        ...


class GatedModel(Model):
    """``inner`` with every call (plain or streamed) admitted by ``gate`` first."""

    def __init__(self, inner: Model, gate: LeadGate) -> None:
        self.inner = inner
        self.gate = gate

    async def get_response(
        self, system_instructions: str | None, input: Any, *args: Any, **kwargs: Any
    ) -> ModelResponse:
        async with self.gate.call(_estimate(system_instructions, input)) as ticket:
            response = await self.inner.get_response(system_instructions, input, *args, **kwargs)
            ticket.used(response.usage.total_tokens)
        return response

    async def stream_response(  # an async generator, as the SDK's own
        self, system_instructions: str | None, input: Any, *args: Any, **kwargs: Any
    ) -> AsyncIterator[Any]:
        async with self.gate.call(_estimate(system_instructions, input)) as ticket:
            async for event in self.inner.stream_response(
                system_instructions, input, *args, **kwargs
            ):
                if event.type == "response.completed" and event.response.usage is not None:
                    ticket.used(event.response.usage.total_tokens)
                yield event

    async def close(self) -> None:
        await self.inner.close()

    def get_retry_advice(self, request: Any) -> Any:
        return self.inner.get_retry_advice(request)

    async def _cleanup_on_run_end(self, owner: object) -> None:
        await self.inner._cleanup_on_run_end(owner)


def _estimate(system_instructions: str | None, input: Any) -> int:
    """Tokens the call's prompt will use, roughly (four characters a token); the ticket
    corrects it with the provider's count."""
    return (len(system_instructions or "") + len(str(input))) // 4 + 1
