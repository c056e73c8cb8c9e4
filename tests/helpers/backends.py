"""A backend with a bug, for the one case no real backend can be made to show on purpose."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from specialists.backend import ChatMessage, Generation, SLMBackend
from specialists.catalog import Specialist
from specialists.sampling import Sampling


class BrokenBackend(SLMBackend):
    """A backend with a bug: ``generate`` raises what no caller expects.

    Args:
        error: What it raises; by default the ``RuntimeError`` of a batching bug.
    """

    name = "broken"

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error or RuntimeError("index out of range in the batcher")

    async def generate(
        self,
        specialist: Specialist,
        messages: Sequence[ChatMessage],
        *,
        sampling: Sampling | None = None,
    ) -> Generation:
        raise self.error

    async def load_adapter(self, name: str, path: Path) -> None:
        raise NotImplementedError

    async def unload_adapter(self, name: str) -> None:
        raise NotImplementedError

    async def loaded_adapters(self) -> set[str]:
        raise NotImplementedError
