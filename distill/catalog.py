"""The catalog the registry describes: the base catalog with the registry's work on top.

The *effective* catalog is what is served: the built-in specialists with the settings' overrides,
then the registry's active versions — a built-in specialist with an active version gets its
adapter and calibrated threshold; a registry-only specialist is added whole — less the paused
specialists. A canary's catalog is the effective one with the canary's version applied the same
way: the rest of its specialist's traffic gets the active version, or the built-in or settings
definition, or — a registry-only specialist whose only served version is the canary — nothing
(the lead answers, as if the specialist did not exist). The *known* catalog
adds the registry-only specialists that have no active version yet (being trained): everything a
dataset, a version or a job may belong to.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from database.engine import Database
from distill.registry import (
    RegistrySnapshot,
    RegistryStore,
    SpecialistDefinition,
    SpecialistVersion,
)
from specialists.adapters import content_tag
from specialists.catalog import Catalog, GenerationParams, Specialist

logger = logging.getLogger(__name__)


def effective_catalog(base: Catalog, snapshot: RegistrySnapshot) -> Catalog:
    """``base`` with the registry's active versions applied (see the module docstring), less
    the paused specialists: what a run that is not in a canary is served."""
    applied = _apply(base, snapshot.active, snapshot)
    return Catalog(s for s in applied if s.name not in snapshot.paused)


@dataclass(frozen=True, slots=True)
class ServedCatalogs:
    """Everything a serving process serves at one registry generation.

    Canaries are tiered so a run's choice is one number (its canary point, see
    :mod:`orchestrator.canary`): ``canaries[j]`` is the effective catalog with the ``j + 1``
    canaries of largest share applied, for the runs whose point is below its share — so each
    canary serves exactly its share, and there are only ``len(canaries) + 1`` catalogs to
    prepare, whatever the number of canaries.
    """

    generation: int
    catalog: Catalog
    """What runs outside every canary get."""
    canaries: tuple[tuple[float, Catalog], ...]
    """``(share, catalog)``, largest share first."""
    paused: frozenset[str]

    @property
    def all(self) -> tuple[Catalog, ...]:
        """Every catalog served: each one's adapters must be on the backend."""
        return (self.catalog, *(catalog for _, catalog in self.canaries))


def served_catalogs(base: Catalog, snapshot: RegistrySnapshot) -> ServedCatalogs:
    """The effective catalog and its canary tiers (paused specialists' canaries left out)."""
    catalog = effective_catalog(base, snapshot)
    canaries = sorted(
        (c for c in snapshot.canaries if c.specialist not in snapshot.paused),
        key=lambda c: (-(c.canary_share or 0.0), c.specialist),
    )
    tiers = tuple(
        (canary.canary_share or 0.0, _apply(catalog, canaries[: index + 1], snapshot))
        for index, canary in enumerate(canaries)
    )
    return ServedCatalogs(snapshot.generation, catalog, tiers, snapshot.paused)


def _apply(
    catalog: Catalog, versions: Sequence[SpecialistVersion], snapshot: RegistrySnapshot
) -> Catalog:
    """``catalog`` with each of ``versions``' adapter and threshold on its specialist (a
    registry-only specialist it lacks is added from its definition)."""
    specialists = {specialist.name: specialist for specialist in catalog}
    for version in versions:
        current = specialists.get(version.specialist)
        if current is None:
            definition = snapshot.definitions.get(version.specialist)
            if definition is None:  # a version of a specialist that was since removed
                logger.warning(
                    "%s version %s has no definition; skipped", version.status, version.label
                )
                continue
            current = specialist_from_definition(definition)
        specialists[version.specialist] = replace(
            current,
            adapter=Path(version.adapter_path),
            version=version_tag(version),
            base_model=version.base_model,
            confidence_threshold=(
                current.confidence_threshold if version.threshold is None else version.threshold
            ),
        )
    return Catalog(specialists.values())


def version_tag(version: SpecialistVersion) -> str:
    """How a registry version tags its adapter's served name: ``v3-1f2e3d4c``, its number and
    the start of its SHA-256 (see :func:`~specialists.adapters.served_adapter_name`)."""
    return tag_of(version.version, version.adapter_sha256)


def tag_of(number: int, adapter_sha256: str) -> str:
    """:func:`version_tag` from a version's number and adapter hash (a query's columns)."""
    return f"v{number}-{content_tag(adapter_sha256)}"


def known_catalog(base: Catalog, snapshot: RegistrySnapshot) -> Catalog:
    """Every specialist a version may belong to: the base with the active versions (paused
    ones included), plus the registry-only specialists that have no active version yet (being
    trained, or in their first canary), with their bare base."""
    catalog = _apply(base, snapshot.active, snapshot)
    pending = [
        specialist_from_definition(definition)
        for name, definition in snapshot.definitions.items()
        if name not in catalog.names
    ]
    return Catalog([*catalog, *pending])


def specialist_from_definition(definition: SpecialistDefinition) -> Specialist:
    """A registry-only specialist as the catalog holds it (without an adapter yet)."""
    return Specialist(
        name=definition.name,
        description=definition.description,
        system_prompt=definition.system_prompt,
        generation=GenerationParams(max_tokens=definition.max_tokens),
        validator=definition.validator,
        examples=definition.examples,
    )


async def load_catalog(registry: RegistryStore, base: Catalog) -> ServedCatalogs:
    """What the registry serves now: the effective catalog, its canaries, the paused names."""
    return served_catalogs(base, await registry.snapshot())


async def served_catalog(database: Database, base: Catalog) -> Catalog:
    """The catalog served now: ``base`` with the registry's active versions."""
    return (await load_catalog(RegistryStore(database), base)).catalog


async def served_with_canaries(database: Database, base: Catalog) -> tuple[Catalog, int]:
    """The catalog served now, and how many canary versions serve beside it (what the SLM
    server's LoRA slots must hold at once)."""
    served = await load_catalog(RegistryStore(database), base)
    return served.catalog, len(served.canaries)


async def known_specialist(database: Database, base: Catalog, name: str) -> Specialist:
    """``name`` from ``base`` or the registry, served or still being trained.

    Raises:
        UnknownSpecialistError: Neither knows it (the message lists the names that exist).
    """
    snapshot = await RegistryStore(database).snapshot()
    return known_catalog(base, snapshot).get(name)
