"""The specialist registry on real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from distill.registry import (
    NotInRegistry,
    PromotionRefused,
    ProposalDraft,
    RegistryError,
    RegistryStore,
    SpecialistDefinition,
    SpecialistVersion,
)
from tests.helpers.stores import open_store


@pytest.fixture
async def registry(database_url: str) -> AsyncIterator[RegistryStore]:
    store = await open_store(RegistryStore, database_url)
    yield store
    await store.database.close()


async def add(registry: RegistryStore, name: str = "math", **overrides: Any) -> SpecialistVersion:
    values = {
        "adapter_path": f"/adapters/{name}",
        "adapter_sha256": "ab" * 32,
        "base_model": "smollm2-135m",
        "lora_rank": 8,
        "dataset_path": f"/datasets/{name}",
        **overrides,
    }
    return await registry.add_version(name, **values)


async def evaluated(
    registry: RegistryStore, name: str = "math", *, passed: bool = True
) -> SpecialistVersion:
    version = await add(registry, name)
    gate = {"passed": passed, "reasons": [] if passed else ["precision 0.80 < 0.95"]}
    return await registry.record_evaluation(
        version.id, metrics={"gate": gate}, threshold=0.8, gate_passed=passed
    )


def draft(name: str, runs: int = 3, savings: float = 1.0) -> ProposalDraft:
    return ProposalDraft(
        name=name,
        description=f"Handles {name} requests.",
        examples=(f"{name} example",),
        run_ids=tuple(f"{name}-{i}" for i in range(runs)),
        lead_cost_usd=savings / 30,
        window_days=1.0,
        monthly_savings_usd=savings,
        nearest_specialist="email",
        nearest_score=0.05,
    )


async def test_versions_are_numbered_per_specialist_and_start_as_candidates(
    registry: RegistryStore,
) -> None:
    first, second, other = await add(registry), await add(registry), await add(registry, "email")
    assert (first.version, second.version, other.version) == (1, 2, 1)
    assert {first.status, second.status, other.status} == {"candidate"}
    assert first.gate_passed is None and first.threshold is None and first.metrics == {}
    assert [v.label for v in await registry.list_versions()] == ["email@1", "math@1", "math@2"]
    assert (await registry.find_version("math")).id == second.id  # newest without a number
    assert (await registry.find_version("math", 1)).id == first.id
    with pytest.raises(NotInRegistry, match="math@7"):
        await registry.find_version("math", 7)


async def test_concurrent_registrations_get_distinct_version_numbers(
    registry: RegistryStore,
) -> None:
    versions = await asyncio.gather(*(add(registry) for _ in range(6)))
    assert sorted(v.version for v in versions) == [1, 2, 3, 4, 5, 6]


async def test_promotion_needs_a_passed_gate_and_changes_nothing_when_refused(
    registry: RegistryStore,
) -> None:
    unevaluated = await add(registry)
    failed = await evaluated(registry, passed=False)
    with pytest.raises(PromotionRefused, match="has not been evaluated"):
        await registry.promote(unevaluated.id)
    with pytest.raises(PromotionRefused, match=r"failed the evaluation gate: precision 0\.80"):
        await registry.promote(failed.id)
    assert await registry.generation() == 0
    assert (await registry.snapshot()).active == ()
    with pytest.raises(NotInRegistry):
        await registry.promote(999)


async def test_promote_retires_the_previous_version_and_rollback_restores_it(
    registry: RegistryStore,
) -> None:
    v1, v2 = await evaluated(registry), await evaluated(registry)
    promoted = await registry.promote(v1.id)
    assert promoted.status == "active" and promoted.replaces_id is None
    assert promoted.promoted_at is not None and await registry.generation() == 1
    with pytest.raises(PromotionRefused, match="already active"):
        await registry.promote(v1.id)

    second = await registry.promote(v2.id)
    assert second.replaces_id == v1.id and await registry.generation() == 2
    assert (await registry.get_version(v1.id)).status == "retired"
    snapshot = await registry.snapshot()
    assert [v.label for v in snapshot.active] == ["math@2"] and snapshot.generation == 2

    retired, restored = await registry.rollback("math")
    assert (retired.label, retired.status) == ("math@2", "retired")
    assert restored is not None and (restored.label, restored.status) == ("math@1", "active")
    assert (await registry.active_version("math")) == restored

    retired, restored = await registry.rollback("math")  # back to the built-in definition
    assert retired.label == "math@1" and restored is None
    assert await registry.active_version("math") is None and await registry.generation() == 4

    with pytest.raises(RegistryError, match="no active version"):
        await registry.rollback("math")
    assert await registry.generation() == 4


async def test_a_retired_version_can_be_promoted_again(registry: RegistryStore) -> None:
    v1, v2 = await evaluated(registry), await evaluated(registry)
    await registry.promote(v1.id)
    await registry.promote(v2.id)
    again = await registry.promote(v1.id)
    assert again.status == "active" and again.replaces_id == v2.id
    assert [v.status for v in await registry.list_versions("math")] == ["active", "retired"]


async def test_evaluating_an_active_version_is_refused(registry: RegistryStore) -> None:
    version = await evaluated(registry)
    await registry.promote(version.id)
    with pytest.raises(RegistryError, match="is active"):
        await registry.record_evaluation(version.id, metrics={}, threshold=0.1, gate_passed=True)
    assert (await registry.get_version(version.id)).threshold == 0.8


async def test_each_proposal_round_replaces_the_open_proposals_only(
    registry: RegistryStore,
) -> None:
    first = await registry.replace_open_proposals([draft("refund", savings=2.0), draft("ticket")])
    assert [p.status for p in first] == ["open", "open"] and first[0].run_count == 3
    accepted = await registry.define_specialist(
        SpecialistDefinition(
            name="refund",
            description="Handles refund requests.",
            system_prompt="You answer refund questions.",
            validator="nonempty",
            examples=("Can I get a refund?",),
            proposal_id=first[0].id,
        )
    )
    assert accepted.proposal_id == first[0].id
    await registry.dismiss_proposal(first[1].id)

    second = await registry.replace_open_proposals([draft("invoice", savings=5.0)])
    assert [(p.name, p.status) for p in await registry.list_proposals()] == [
        ("invoice", "open"),
        ("refund", "accepted"),
        ("ticket", "dismissed"),
    ]
    assert (await registry.get_proposal(second[0].id)).run_ids == (
        "invoice-0",
        "invoice-1",
        "invoice-2",
    )
    assert [p.name for p in await registry.list_proposals(status="open")] == ["invoice"]


async def test_a_specialist_is_defined_once_and_a_refusal_changes_nothing(
    registry: RegistryStore,
) -> None:
    (proposal,) = await registry.replace_open_proposals([draft("refund")])
    definition = SpecialistDefinition(
        name="refund",
        description="Handles refund requests.",
        system_prompt="You answer refund questions.",
        validator="nonempty",
        examples=("Can I get a refund?",),
    )
    await registry.define_specialist(definition)
    with pytest.raises(RegistryError, match="registered already"):
        await registry.define_specialist(
            SpecialistDefinition(**{**_fields(definition), "proposal_id": proposal.id})
        )
    assert (await registry.get_proposal(proposal.id)).status == "open"  # rolled back with it
    assert (await registry.get_definition("refund")) == definition
    assert await registry.get_definition("math") is None
    assert set((await registry.snapshot()).definitions) == {"refund"}


@pytest.mark.parametrize("name", ["not a name", "x" * 65, "9lives"])
async def test_names_that_cannot_be_adapter_names_are_refused(
    registry: RegistryStore, name: str
) -> None:
    with pytest.raises(RegistryError, match="Python identifier"):
        await add(registry, name)
    assert await registry.list_versions() == []


def _fields(definition: SpecialistDefinition) -> dict[str, Any]:
    return {name: getattr(definition, name) for name in definition.__slots__}
