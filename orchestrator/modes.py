"""The four ways a request can be answered (kept apart so the CLI can name them cheaply)."""

from enum import StrEnum


class Mode(StrEnum):
    """How a request is answered; see :mod:`orchestrator.run`."""

    llm = "llm"
    slm = "slm"
    router = "router"
    cascade = "cascade"
