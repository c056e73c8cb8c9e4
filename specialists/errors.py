"""The one exception tree of Understudy.

Everything the product raises on purpose derives from :class:`UnderstudyError`, so the CLI and the
HTTP layer can turn it into a message or an error response in one place::

    UnderstudyError
    ├── ConfigurationError        a setting is missing or inconsistent (says which one)
    ├── ModelError                a model cannot be found, fetched or loaded
    │   └── ModelDirectoryError   a model directory lacks a file or holds a corrupt one
    ├── UnknownSpecialistError    a specialist name that is not in the catalog
    │   └── SpecialistPaused      … because an operator paused it
    ├── SpecialistError           a specialist call failed for a reason the caller must see
    │   ├── SpecialistUnavailable the SLM backend could not be reached in time, or is closing
    │   └── PromptTooLong         one request does not fit the model's context
    ├── AdaptersNotServed         the SLM server lacks adapters the catalog serves (restarted)
    ├── DatasetError              a distillation dataset cannot be built or read (says why)
    └── TrainingError             LoRA training cannot start or resume (says why)

It lives in ``specialists`` because that is the bottom of the import graph: every other package
may import it, and it imports nothing of ours.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path


class UnderstudyError(Exception):
    """Root of every error Understudy raises on purpose."""


class ConfigurationError(UnderstudyError):
    """A setting is missing or inconsistent.

    Args:
        message: What is wrong.
        setting: The environment variable (or CLI flag) that fixes it.
    """

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        self.setting = setting
        super().__init__(f"{message} (set {setting})" if setting else message)


class ModelError(UnderstudyError):
    """A model cannot be found, fetched or loaded."""


class ModelDirectoryError(ModelError):
    """A model directory is missing a file, or a file in it cannot be read.

    Args:
        directory: The model directory that was checked.
        file: The file that is missing or corrupt.
        problem: What is wrong with it.
        fix: The command or action that repairs it.
    """

    def __init__(self, directory: Path, file: str, problem: str, fix: str) -> None:
        self.directory = directory
        self.file = file
        self.fix = fix
        super().__init__(f"{directory / file}: {problem}. Fix: {fix}")


class UnknownSpecialistError(UnderstudyError):
    """A specialist name that is not in the catalog; lists the ones that are."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        super().__init__(
            f"unknown specialist {name!r}; known specialists: {', '.join(self.known) or 'none'}"
        )


class SpecialistPaused(UnknownSpecialistError):
    """A specialist an operator paused: it answers nothing until resumed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.known = []
        UnderstudyError.__init__(
            self,
            f"specialist {name!r} is paused: it answers no requests until an operator resumes "
            f"it (`understudy specialists resume {name}`); ask without naming it to get the lead",
        )


class SpecialistError(UnderstudyError):
    """A specialist call failed (bad request, unknown adapter, malformed reply)."""

    def __init__(self, specialist: str, reason: str) -> None:
        self.specialist = specialist
        self.reason = reason
        super().__init__(f"specialist {specialist!r} failed: {reason}")


class SpecialistUnavailable(SpecialistError):
    """The SLM backend did not answer within the timeout and retry budget, or is shutting down.

    Callers that can recover (the lead's tools) turn this into text the lead reacts to.
    """

    def __init__(self, specialist: str, reason: str, *, elapsed_s: float) -> None:
        self.elapsed_s = elapsed_s
        super().__init__(specialist, f"unavailable after {elapsed_s:.1f}s: {reason}")


class PromptTooLong(SpecialistError):
    """One request does not fit: its prompt, or its prompt plus the tokens it asks for, is over
    a limit of the model or the backend.

    It belongs to that request alone: requests batched with it are still answered.

    Args:
        specialist: The specialist asked.
        reason: What is over which limit, and how to fit.
        prompt_tokens: The prompt's length in tokens, as the model sees it.
    """

    def __init__(self, specialist: str, reason: str, *, prompt_tokens: int) -> None:
        self.prompt_tokens = prompt_tokens
        super().__init__(specialist, reason)


class AdaptersNotServed(UnderstudyError):
    """Specialists of the served catalog whose adapter the SLM server does not serve (it
    restarted without them, say): until they are loaded again their calls fail.

    Args:
        missing: The served name each specialist needs, by specialist.
        server: Which server lacks them (for the message).
    """

    def __init__(self, missing: Mapping[str, str], server: str) -> None:
        self.missing = dict(missing)
        needs = ", ".join(f"{name!r} needs adapter {served!r}" for name, served in missing.items())
        super().__init__(f"specialist {needs}, which {server} does not serve")


class DatasetError(UnderstudyError):
    """A distillation dataset cannot be built (no usable transcripts) or read (a bad file)."""


class TrainingError(UnderstudyError):
    """LoRA training cannot start or resume: too little data, or a checkpoint of another run."""
