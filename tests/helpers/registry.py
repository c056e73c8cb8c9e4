"""Registry versions made active without a training run: a real adapter, a passed gate."""

from __future__ import annotations

import asyncio
from pathlib import Path

from distill.catalog import version_tag
from distill.registry import RegistryStore, SpecialistVersion
from specialists.adapters import adapter_name, adapter_sha256
from tests.helpers.stores import open_store


async def promoted(
    registry: RegistryStore,
    name: str,
    adapter: Path,
    *,
    base_model: str = "tiny",
    threshold: float = 0.42,
) -> SpecialistVersion:
    """``adapter`` registered as ``name``'s next version, evaluated as passing, and active."""
    version = await registry.add_version(
        name,
        adapter_path=str(adapter),
        adapter_sha256=adapter_sha256(adapter),
        base_model=base_model,
        lora_rank=8,
    )
    await registry.record_evaluation(version.id, metrics={}, threshold=threshold, gate_passed=True)
    return await registry.promote(version.id)


def promoted_at(database_url: str, name: str, adapter: Path, *, base_model: str) -> str:
    """``adapter`` made ``name``'s active version in the registry at ``database_url`` (from
    synchronous code, as a fixture); the name vLLM serves it under."""

    async def promote() -> str:
        registry = await open_store(RegistryStore, database_url)
        try:
            version = await promoted(registry, name, adapter, base_model=base_model)
        finally:
            await registry.database.close()
        return adapter_name(name, version_tag(version))

    return asyncio.run(promote())
