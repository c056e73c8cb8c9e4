"""Registry versions made active without a training run: a real adapter, a passed gate."""

from __future__ import annotations

from pathlib import Path

from distill.registry import RegistryStore, SpecialistVersion
from specialists.adapters import adapter_sha256


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
