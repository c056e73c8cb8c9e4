"""The specialist catalog: each understudy as plain data.

A specialist is a system prompt, a base model, an optional LoRA adapter, generation parameters, an
output validator and a confidence threshold. Its ``description`` is the tool description the lead
reads, so it is written as a prompt: what to send, what comes back.

Defaults live here in code; the settings layer overrides any field per specialist (or adds new
specialists) and hands the merged :class:`Catalog` down.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from specialists.errors import ConfigurationError, UnknownSpecialistError
from specialists.validators import Validation, get_validator


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """How a specialist samples. Greedy by default: understudies should be repeatable."""

    max_tokens: int = 256
    """Upper bound on generated tokens."""
    temperature: float = 0.0
    """0 means greedy decoding."""
    top_p: float = 1.0
    """Nucleus sampling mass; only used when ``temperature`` > 0."""

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ConfigurationError(f"max_tokens must be ≥ 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ConfigurationError(f"temperature must be ≥ 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigurationError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass(frozen=True, slots=True)
class Specialist:
    """One understudy: everything needed to call it and to judge its answer."""

    name: str
    """Identifier; with ``version`` it names the LoRA adapter on the SLM server."""
    description: str
    """What the lead reads when deciding to delegate (the tool description)."""
    system_prompt: str
    """Kept short: a 135M model recomputes it for every request."""
    base_model: str | None = None
    """Model reference (alias, Hub id or directory); ``None`` means the backend's default base."""
    adapter: Path | None = None
    """LoRA adapter directory; ``None`` runs the bare base model with the system prompt."""
    version: str | None = None
    """The adapter's registry version (``v3-1f2e3d4c``: number and content), which names it on
    the SLM servers (see :func:`specialists.adapters.served_adapter_name`); ``None`` for an
    adapter from settings."""
    generation: GenerationParams = field(default_factory=GenerationParams)
    validator: str = "nonempty"
    """Name of an output validator in :mod:`specialists.validators`."""
    confidence_threshold: float = 0.5
    """Minimum mean token probability at which the cascade accepts an answer."""
    examples: tuple[str, ...] = ()
    """Typical requests, used by the pre-router to recognise this specialist's traffic."""

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ConfigurationError(
                f"specialist name {self.name!r} must be a Python identifier (letters, digits, _)"
            )
        if not 0.0 <= self.confidence_threshold <= 1.0:
            raise ConfigurationError(
                f"confidence_threshold of {self.name!r} must be in [0, 1], "
                f"got {self.confidence_threshold}"
            )
        get_validator(self.validator)  # fail at configuration time, not on the first request

    def validate(self, answer: str) -> Validation:
        """Run this specialist's output validator on an answer."""
        return get_validator(self.validator)(answer)


DEFAULT_SPECIALISTS: tuple[Specialist, ...] = (
    Specialist(
        name="math",
        description=(
            "Solves arithmetic and grade-school math word problems step by step and ends with "
            "the final number. Send the full problem in plain words. Returns the worked answer "
            "and a confidence in [0, 1]; check the arithmetic with the calculator when it matters."
        ),
        system_prompt=(
            "You solve math problems. Think step by step, then finish with a line "
            "'Answer: <number>'."
        ),
        generation=GenerationParams(max_tokens=256),
        validator="numeric_answer",
        confidence_threshold=0.75,
        examples=(
            "What is 17 * 24?",
            "A shop sells pens at $3 each. How much do 12 pens cost?",
            "If a train travels 60 km/h for 2.5 hours, how far does it go?",
        ),
    ),
    Specialist(
        name="email",
        description=(
            "Drafts, rewrites, shortens or summarises emails and writes subject lines. Send the "
            "task and any source text. Returns the email text and a confidence in [0, 1]; review "
            "tone and facts before passing it on."
        ),
        system_prompt="You write clear, polite, concise emails. Reply with the email text only.",
        generation=GenerationParams(max_tokens=320),
        validator="email_text",
        confidence_threshold=0.6,
        examples=(
            "Write an email to my manager asking for Friday off.",
            "Summarise this email thread in two sentences.",
            "Write a subject line for this email.",
        ),
    ),
    Specialist(
        name="code",
        description=(
            "Writes small, self-contained Python functions from a specification. Send the "
            "function's purpose, name and signature if known. Returns Python code and a "
            "confidence in [0, 1]; run it against tests with run_python before trusting it."
        ),
        system_prompt="You write correct, simple Python. Reply with one ```python code block.",
        generation=GenerationParams(max_tokens=384),
        validator="python_function",
        confidence_threshold=0.7,
        examples=(
            "Write a Python function that reverses a string.",
            "Implement a function that checks whether a number is prime.",
            "Write a function to merge two sorted lists.",
        ),
    ),
)


class Catalog:
    """An immutable, name-indexed set of specialists."""

    def __init__(self, specialists: Iterable[Specialist]) -> None:
        self._by_name: dict[str, Specialist] = {}
        for specialist in specialists:
            if specialist.name in self._by_name:
                raise ConfigurationError(f"specialist {specialist.name!r} is defined twice")
            self._by_name[specialist.name] = specialist

    @classmethod
    def default(cls) -> Catalog:
        """The built-in math, email and code specialists."""
        return cls(DEFAULT_SPECIALISTS)

    def get(self, name: str) -> Specialist:
        """The specialist called ``name``; the error lists the known names."""
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownSpecialistError(name, self._by_name) from None

    @property
    def names(self) -> list[str]:
        """Specialist names in catalog order."""
        return list(self._by_name)

    def __iter__(self) -> Iterator[Specialist]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def with_overrides(self, overrides: Mapping[str, Mapping[str, Any]]) -> Catalog:
        """A new catalog with fields replaced per specialist; unknown names add a specialist.

        A new specialist must give at least ``description`` and ``system_prompt``.
        """
        merged = dict(self._by_name)
        for name, fields in overrides.items():
            values = dict(fields)
            if "version" in values:  # a name that must change with the weights: not a setting
                raise ConfigurationError(
                    f"specialist {name!r}: 'version' is the registry's (adapters from settings "
                    "are named by their content); set 'adapter' only",
                    setting="UNDERSTUDY_SPECIALISTS",
                )
            if isinstance(values.get("generation"), Mapping):
                base = merged[name].generation if name in merged else GenerationParams()
                values["generation"] = replace(base, **values["generation"])
            if "adapter" in values and values["adapter"] is not None:
                values["adapter"] = Path(values["adapter"]).expanduser()
            if "examples" in values:
                values["examples"] = tuple(values["examples"])
            try:
                if name in merged:
                    merged[name] = replace(merged[name], **values)
                else:
                    merged[name] = Specialist(name=name, **values)
            except TypeError as exc:
                raise ConfigurationError(
                    f"invalid override for specialist {name!r}: {exc}",
                    setting="UNDERSTUDY_SPECIALISTS",
                ) from exc
        return Catalog(merged.values())
