"""The registry's refusals: a branch of :class:`~specialists.errors.UnderstudyError`.

A refused operation changed nothing (see :mod:`distill.registry`).
"""

from __future__ import annotations

from specialists.errors import UnderstudyError


class RegistryError(UnderstudyError):
    """A registry operation was refused; the registry is unchanged."""


class NotInRegistry(RegistryError):
    """No proposal, specialist or version matches.

    Args:
        kind: ``proposal``, ``specialist`` or ``version``.
        key: What was looked up.
        hint: Where to find valid keys.
    """

    def __init__(self, kind: str, key: object, hint: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"no {kind} {key!r} in the registry ({hint})")


class PromotionRefused(RegistryError):
    """The version cannot become active or start a canary: it failed or skipped the gate, is
    active already, or was rejected during its canary."""


class CanaryInProgress(PromotionRefused):
    """The specialist has a canary already; one at a time, so its figures are its own."""

    def __init__(self, canary: str, refused: str) -> None:
        self.canary = canary
        super().__init__(
            f"{canary} is in canary; {refused} must wait until it is concluded "
            f"(or roll it back: `understudy specialists rollback {canary.split('@')[0]}`)"
        )


class WrongStatus(RegistryError):
    """The version (or the specialist) is not in the state the operation needs: concluding a
    version that is not in canary, demoting or rolling back a specialist with nothing active,
    re-fitting the threshold of a version that is not served."""


class PauseConflict(RegistryError):
    """Pausing a specialist that is paused already, or resuming one that is not."""


class OutOfRange(RegistryError):
    """A share or a threshold outside the values it may take."""

    def __init__(self, name: str, value: float, allowed: str) -> None:
        self.name = name
        self.value = value
        super().__init__(f"{name} must be {allowed}, got {value!r}")
