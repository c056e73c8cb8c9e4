"""The catalog the registry describes: the base catalog with the registry's work on top.

The *effective* catalog is what is served: the built-in specialists with the settings' overrides,
then the registry's active versions — a built-in specialist with an active version gets its
adapter and calibrated threshold; a registry-only specialist is added whole. The *known* catalog
adds the registry-only specialists that have no active version yet (being trained): everything a
dataset, a version or a job may belong to.
"""

from __future__ import annotations

import logging
from dataclasses import replace
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
    """``base`` with the registry's active versions applied (see the module docstring)."""
    specialists = {specialist.name: specialist for specialist in base}
    for version in snapshot.active:
        current = specialists.get(version.specialist)
        if current is None:
            definition = snapshot.definitions.get(version.specialist)
            if definition is None:  # a version of a specialist that was since removed
                logger.warning("active version %s has no definition; skipped", version.label)
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
    """Every specialist a version may belong to: the effective catalog, plus the registry-only
    specialists that have no active version yet (being trained), with their bare base."""
    catalog = effective_catalog(base, snapshot)
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


async def load_catalog(registry: RegistryStore, base: Catalog) -> tuple[int, Catalog]:
    """The registry's generation and the effective catalog at that generation."""
    snapshot = await registry.snapshot()
    return snapshot.generation, effective_catalog(base, snapshot)


async def served_catalog(database: Database, base: Catalog) -> Catalog:
    """The catalog served now: ``base`` with the registry's active versions."""
    _, catalog = await load_catalog(RegistryStore(database), base)
    return catalog


CANARY = "canary"
"""The status of a version serving a share of its specialist's traffic beside the active one."""


async def served_with_canaries(database: Database, base: Catalog) -> tuple[Catalog, int]:
    """The catalog served now, and how many canary versions serve beside it (what the SLM
    server's LoRA slots must hold at once)."""
    registry = RegistryStore(database)
    _, catalog = await load_catalog(registry, base)
    canaries = sum(version.status == CANARY for version in await registry.list_versions())
    return catalog, canaries


async def known_specialist(database: Database, base: Catalog, name: str) -> Specialist:
    """``name`` from ``base`` or the registry, served or still being trained.

    Raises:
        UnknownSpecialistError: Neither knows it (the message lists the names that exist).
    """
    snapshot = await RegistryStore(database).snapshot()
    return known_catalog(base, snapshot).get(name)
