"""The specialist registry: which trained version of each specialist is served, and what is next.

Rows (migrations 0004 and 0014) hold proposals for new specialists, the definitions of
specialists that exist only here, every trained version of any specialist — adapter path and
SHA-256, base model, evaluation metrics, calibrated threshold, gate verdict and status
(``candidate`` → ``canary`` → ``active`` → ``retired``, or ``rejected``) — the specialists an
operator paused, and an event per change. The registry is the source of truth for what is
served: serving processes poll :meth:`RegistryStore.generation`, which every change to what is
served bumps in the same transaction, and rebuild their catalog from
:meth:`RegistryStore.snapshot`.

- :mod:`~distill.registry.records`: what the store returns;
- :mod:`~distill.registry.base`: proposals, definitions, versions as recorded;
- :mod:`~distill.registry.lifecycle`: canaries, promotion, rollback, demotion, thresholds,
  pausing, and the event log (:class:`RegistryStore`).

Errors, a small branch of :class:`~specialists.errors.UnderstudyError`::

    UnderstudyError
    └── RegistryError             a registry operation is refused; nothing was changed
        ├── NotInRegistry         no proposal, specialist or version by that id or name
        ├── PromotionRefused      the version may not become active or start a canary
        │   └── CanaryInProgress  another version of the specialist is in canary
        ├── WrongStatus           the version or specialist is not in the state needed
        ├── PauseConflict         pausing a paused specialist, resuming one that is not
        └── OutOfRange            a share or threshold outside its range
"""

from distill.registry.errors import (
    CanaryInProgress,
    NotInRegistry,
    OutOfRange,
    PauseConflict,
    PromotionRefused,
    RegistryError,
    WrongStatus,
)
from distill.registry.lifecycle import RegistryStore, promotion_refusal
from distill.registry.records import (
    EventKind,
    Proposal,
    ProposalDraft,
    RegistryEvent,
    RegistrySnapshot,
    SpecialistDefinition,
    SpecialistVersion,
)

__all__ = [
    "CanaryInProgress",
    "EventKind",
    "NotInRegistry",
    "OutOfRange",
    "PauseConflict",
    "PromotionRefused",
    "Proposal",
    "ProposalDraft",
    "RegistryError",
    "RegistryEvent",
    "RegistrySnapshot",
    "RegistryStore",
    "SpecialistDefinition",
    "SpecialistVersion",
    "WrongStatus",
    "promotion_refusal",
]
