"""The steward on audits stored in the real ``AuditStore`` (SQLite and PostgreSQL): each pass
calls the registry action the stored figures call for, with the reason and figures.

The registry here is an in-memory implementation of :class:`LifecycleRegistry` that records
the calls (the ``RegistryStore`` methods land separately); the audits, their windowed counts
and their confidences are the store's own.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from database import Database
from distill.catalog import version_tag
from distill.config import GateConfig
from distill.registry import RegistryError, SpecialistVersion
from distill.steward import Steward, StewardConfig, StewardMetrics
from orchestrator.audits import (
    AuditCandidate,
    AuditPolicy,
    AuditStore,
    AuditVerdict,
    LifecyclePolicy,
)

CONFIG = StewardConfig(
    lifecycle=LifecyclePolicy(), audits=AuditPolicy(), gate=GateConfig(target_precision=0.9)
)


def version(id_: int, status: str, *, number: int | None = None, threshold: float = 0.5) -> Any:
    now = datetime.now(UTC)
    return SpecialistVersion(
        id=id_,
        specialist="math",
        version=number or id_,
        status=status,
        adapter_path=f"/adapters/{id_}",
        adapter_sha256=f"{id_:02d}" * 32,
        base_model="tiny",
        lora_rank=8,
        dataset_path=None,
        threshold=threshold,
        gate_passed=True,
        metrics={},
        replaces_id=None,
        created_at=now,
        evaluated_at=now,
        promoted_at=now,
        retired_at=None,
    )


@dataclass(frozen=True)
class Snapshot:
    active: tuple[SpecialistVersion, ...]
    canaries: tuple[SpecialistVersion, ...]


@dataclass
class MemoryRegistry:
    """Keeps :class:`LifecycleRegistry`'s promises in memory and records every call."""

    versions: dict[int, SpecialistVersion]
    calls: list[tuple[str, Any, str, Mapping[str, Any]]] = field(default_factory=list)
    refuse: bool = False

    async def snapshot(self) -> Snapshot:
        by_status = lambda status: tuple(v for v in self.versions.values() if v.status == status)  # noqa: E731
        return Snapshot(by_status("active"), by_status("canary"))

    async def conclude_canary(
        self,
        version_id: int,
        *,
        passed: bool,
        reason: str,
        figures: Mapping[str, Any],
        actor: str = "worker",
    ) -> SpecialistVersion:
        if self.refuse:
            raise RegistryError("concluded already")
        self.calls.append(("conclude_canary", (version_id, passed), actor, figures))
        self.versions[version_id] = replace(
            self.versions[version_id], status="active" if passed else "retired"
        )
        return self.versions[version_id]

    async def demote(
        self, specialist: str, *, reason: str, figures: Mapping[str, Any], actor: str = "worker"
    ) -> tuple[SpecialistVersion, SpecialistVersion | None]:
        self.calls.append(("demote", specialist, actor, {"reason": reason, **figures}))
        active = next(v for v in self.versions.values() if v.status == "active")
        self.versions[active.id] = replace(active, status="retired")
        return self.versions[active.id], None

    async def set_threshold(
        self,
        version_id: int,
        threshold: float,
        *,
        reason: str,
        figures: Mapping[str, Any],
        actor: str = "worker",
    ) -> SpecialistVersion:
        self.calls.append(("set_threshold", (version_id, threshold), actor, figures))
        self.versions[version_id] = replace(self.versions[version_id], threshold=threshold)
        return self.versions[version_id]


@pytest.fixture
async def audits(database_url: str) -> AsyncIterator[AuditStore]:
    database = await Database.open(database_url)
    yield AuditStore(database)
    await database.close()


_runs = itertools.count()


async def audited(
    store: AuditStore, of: SpecialistVersion, outcomes: list[tuple[float, bool]]
) -> None:
    """Store judged audits of ``of``'s answers: (confidence, agreed) each."""
    for confidence, agreed in outcomes:
        await store.enqueue(
            AuditCandidate(
                run_id=f"run-{next(_runs)}",
                specialist=of.specialist,
                version=version_tag(of),
                judge="numeric_answer",
                messages=[{"role": "user", "content": "1 + 1?"}],
                answer="2",
                source="cascade",
                confidence=confidence,
            )
        )
        claimed = await store.claim("w", lease_s=60)
        assert claimed is not None and claimed.candidate.confidence == confidence
        verdict = AuditVerdict(lead_answer="2", agreed=agreed, score=float(agreed), details={})
        assert await store.settle(claimed, verdict, cost_usd=0.001)


def steward(registry: MemoryRegistry, store: AuditStore) -> tuple[Steward, CollectorRegistry]:
    metrics = CollectorRegistry()
    return Steward(registry, store, CONFIG, metrics=StewardMetrics(metrics)), metrics


def count(metrics: CollectorRegistry, action: str) -> float:
    labels = {"specialist": "math", "action": action}
    return metrics.get_sample_value("understudy_lifecycle_decisions_total", labels) or 0.0


async def test_a_canary_that_agrees_is_passed_and_one_that_does_not_is_rejected(
    audits: AuditStore,
) -> None:
    active, good = version(1, "active"), version(2, "canary")
    registry = MemoryRegistry({1: active, 2: good})
    await audited(audits, good, [(0.9, True)] * 60)
    await audited(audits, active, [(0.9, True)] * 5)  # too few to judge the active one
    runner, metrics = steward(registry, audits)
    decisions = await runner.run_once(refit=False)
    assert [(d.action, d.version) for d in decisions] == [("pass", 2)]
    assert registry.calls[0][:3] == ("conclude_canary", (2, True), "steward")
    assert registry.calls[0][3]["audits"] == 60
    assert count(metrics, "pass") == 1

    bad = version(3, "canary")
    registry.versions[3] = bad
    await audited(audits, bad, [(0.9, i % 3 != 0) for i in range(45)])  # 67 % agree
    decisions = await runner.run_once(refit=False)
    assert [(d.action, d.version) for d in decisions] == [("reject", 3)]
    assert registry.calls[-1][1] == (3, False)
    assert await runner.run_once(refit=False) == []  # nothing left to decide


async def test_a_drifted_active_version_is_demoted_with_the_figure_that_failed(
    audits: AuditStore,
) -> None:
    active = version(1, "active")
    registry = MemoryRegistry({1: active})
    await audited(audits, active, [(0.9, i % 2 == 0) for i in range(40)])
    runner, metrics = steward(registry, audits)
    [decision] = await runner.run_once(refit=True)
    assert decision.action == "demote"
    name, specialist, actor, figures = registry.calls[0]
    assert (name, specialist, actor) == ("demote", "math", "steward")
    assert figures["reason"].startswith("precision upper bound")
    assert figures["agreements"] == 20 and figures["audits"] == 40
    assert count(metrics, "demote") == 1


async def test_a_threshold_is_refitted_from_audited_confidences_only_when_it_moves(
    audits: AuditStore,
) -> None:
    active = version(1, "active", threshold=0.5)
    registry = MemoryRegistry({1: active})
    # Below 0.7 the answers agree half the time; from 0.7 on, always.
    low = [(0.5 + 0.01 * i, i % 2 == 0) for i in range(20)]
    high = [(0.7 + 0.005 * i, True) for i in range(40)]
    await audited(audits, active, low + high)
    runner, metrics = steward(registry, audits)
    assert await runner.run_once(refit=False) == []  # precise enough overall: kept, no re-fit
    [decision] = await runner.run_once(refit=True)
    assert decision.action == "refit"
    name, (version_id, threshold), _, figures = registry.calls[0]
    assert (name, version_id) == ("set_threshold", 1)
    # The lowest threshold at 90 %: 0.60 keeps 45 of 50 agreeing; 0.59 would keep 45 of 51.
    assert threshold == pytest.approx(0.595)
    assert figures["previous"] == 0.5 and figures["precision"] >= 0.9
    assert count(metrics, "refit") == 1
    # Fitted again on the same audits, the threshold no longer moves: nothing is written.
    assert await runner.run_once(refit=True) == []
    assert len(registry.calls) == 1


async def test_a_decision_the_registry_refuses_is_skipped_and_not_counted(
    audits: AuditStore,
) -> None:
    canary = version(2, "canary")
    registry = MemoryRegistry({2: canary}, refuse=True)
    await audited(audits, canary, [(0.9, True)] * 60)
    runner, metrics = steward(registry, audits)
    assert await runner.run_once(refit=False) == []
    assert count(metrics, "pass") == 0
