"""The sampler's rates follow the store's audits, read once per refresh period."""

from __future__ import annotations

from orchestrator.audits import AuditPolicy, AuditSampler, AuditStore, AuditVerdict
from tests.evals.test_audit_drain import candidate
from tests.helpers.stores import open_store

POLICY = AuditPolicy(rate=0.5, floor=0.02, min_audits=20, target_width=0.1)


async def settle(store: AuditStore, count: int) -> None:
    """``count`` agreeing audits of math's base version."""
    for n in range(count):
        await store.enqueue(candidate(f"run-{n}", n))
        claimed = await store.claim("w1", lease_s=60)
        assert claimed is not None
        assert await store.settle(claimed, AuditVerdict("8", True, 1.0, {}), 0.0)


async def test_a_well_audited_version_falls_to_the_floor_once_the_rates_are_read_again(
    database_url: str,
) -> None:
    store = await open_store(AuditStore, database_url)
    now = [0.0]
    sampler = AuditSampler(store, POLICY, refresh_s=60, clock=lambda: now[0])
    try:
        assert await sampler.rate("math", "base") == 0.5  # never audited: the ceiling
        await settle(store, 60)  # 60 of 60 agree: Wilson width ≈ 0.06, under the target
        now[0] = 59.0
        assert await sampler.rate("math", "base") == 0.5  # still the rates read at 0
        now[0] = 60.0
        assert await sampler.rate("math", "base") == 0.02
        assert await sampler.rate("math", "v2-1f2e3d4c") == 0.5  # another version: unknown
    finally:
        await store.database.close()
