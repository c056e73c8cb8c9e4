"""The registry's lifecycle on real SQLite and PostgreSQL: canaries, demotion, thresholds,
pausing, the event each change writes and the generation each change bumps."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import update

from database.tables import SpecialistVersionRow
from distill.registry import (
    CanaryInProgress,
    EventKind,
    OutOfRange,
    PauseConflict,
    PromotionRefused,
    RegistryStore,
    SpecialistVersion,
    WrongStatus,
)
from tests.distill.test_registry_store import evaluated
from tests.helpers.stores import open_store

FIGURES = {"audits": 120, "precision_low": 0.91}


@pytest.fixture
async def registry(database_url: str) -> AsyncIterator[RegistryStore]:
    store = await open_store(RegistryStore, database_url)
    yield store
    await store.database.close()


async def active(registry: RegistryStore, name: str = "math") -> SpecialistVersion:
    return await registry.promote((await evaluated(registry, name)).id, actor="test")


async def test_a_canary_serves_beside_the_active_version_and_passing_makes_it_active(
    registry: RegistryStore,
) -> None:
    v1 = await active(registry)
    v2 = await evaluated(registry)
    before = await registry.generation()
    canary = await registry.start_canary(v2.id, 0.2, actor="cli")
    assert (canary.status, canary.canary_share) == ("canary", 0.2)
    snapshot = await registry.snapshot()
    assert snapshot.generation == before + 1
    assert [v.label for v in snapshot.active] == ["math@1"]
    assert [(v.label, v.canary_share) for v in snapshot.canaries] == [("math@2", 0.2)]

    passed = await registry.conclude_canary(
        v2.id, passed=True, reason="lower bound cleared the gate", figures=FIGURES
    )
    assert (passed.status, passed.replaces_id) == ("active", v1.id)
    old = await registry.get_version(v1.id)
    assert (old.status, old.retire_reason) == ("retired", "superseded")
    snapshot = await registry.snapshot()
    assert snapshot.generation == before + 2
    assert [v.label for v in snapshot.active] == ["math@2"] and snapshot.canaries == ()
    [event, started, *_] = await registry.events("math")
    assert (event.kind, event.version_id, event.figures, event.actor) == (
        EventKind.canary_passed,
        v2.id,
        FIGURES,
        "worker",
    )
    assert (started.kind, started.figures, started.actor) == (
        EventKind.canary_started,
        {"share": 0.2},
        "cli",
    )


async def test_a_failed_canary_is_rejected_and_the_active_version_keeps_serving(
    registry: RegistryStore,
) -> None:
    v1 = await active(registry)
    v2 = await registry.start_canary((await evaluated(registry)).id, 0.1, actor="cli")
    rejected = await registry.conclude_canary(
        v2.id, passed=False, reason="upper bound below the gate", figures=FIGURES
    )
    assert rejected.status == "rejected" and rejected.retired_at is not None
    snapshot = await registry.snapshot()
    assert [v.id for v in snapshot.active] == [v1.id] and snapshot.canaries == ()
    assert (await registry.events("math", limit=1))[0].kind is EventKind.canary_rejected
    with pytest.raises(PromotionRefused, match="rejected during its canary"):
        await registry.start_canary(v2.id, 0.1, actor="cli")
    with pytest.raises(WrongStatus, match="not in canary"):
        await registry.conclude_canary(v2.id, passed=True, reason="again", figures={})


async def test_one_canary_per_specialist_a_passed_gate_and_a_share_in_range(
    registry: RegistryStore,
) -> None:
    first = await registry.start_canary((await evaluated(registry)).id, 0.1, actor="cli")
    second = await evaluated(registry)
    generation = await registry.generation()
    with pytest.raises(CanaryInProgress, match="math@1 is in canary"):
        await registry.start_canary(second.id, 0.1, actor="cli")
    with pytest.raises(CanaryInProgress):  # nor may another version jump the queue
        await registry.promote(second.id, actor="cli")
    with pytest.raises(PromotionRefused, match="failed the evaluation gate"):
        await registry.start_canary((await evaluated(registry, passed=False)).id, 0.1, actor="x")
    for share in (0.0, 1.0, -0.1):
        with pytest.raises(OutOfRange, match="strictly between 0 and 1"):
            await registry.start_canary(second.id, share, actor="cli")
    assert await registry.generation() == generation
    other = await registry.start_canary((await evaluated(registry, "email")).id, 0.5, actor="x")
    assert {v.label for v in (await registry.snapshot()).canaries} == {first.label, other.label}


async def test_promoting_a_canary_now_cuts_it_short_and_rollback_rejects_a_canary(
    registry: RegistryStore,
) -> None:
    v1 = await active(registry)
    v2 = await registry.start_canary((await evaluated(registry)).id, 0.1, actor="cli")
    now = await registry.promote(v2.id, actor="cli", reason="operator override", figures={"x": 1})
    assert (now.status, now.replaces_id) == ("active", v1.id)
    v3 = await registry.start_canary((await evaluated(registry)).id, 0.3, actor="cli")
    taken, serving = await registry.rollback("math", actor="cli")
    assert (taken.id, taken.status, serving and serving.id) == (v3.id, "rejected", v2.id)
    assert [e.kind for e in await registry.events("math", limit=2)] == [
        EventKind.rolled_back,
        EventKind.canary_started,
    ]


async def test_demotion_returns_to_the_previous_version_or_to_the_lead(
    registry: RegistryStore,
) -> None:
    v1 = await active(registry)
    v2 = await active(registry)
    before = await registry.generation()
    demoted, restored = await registry.demote("math", reason="precision drifted", figures=FIGURES)
    assert (demoted.id, demoted.status, demoted.retire_reason) == (v2.id, "retired", "demoted")
    assert restored is not None and (restored.id, restored.status) == (v1.id, "active")
    assert await registry.generation() == before + 1
    [event] = await registry.events("math", limit=1)
    assert (event.kind, event.reason, event.figures) == (
        EventKind.demoted,
        "precision drifted",
        {**FIGURES, "restored": "math@1"},
    )
    demoted, restored = await registry.demote("math", reason="drifted too", figures={})
    assert (demoted.id, restored) == (v1.id, None)  # v1 replaced nothing: the lead answers
    assert (await registry.snapshot()).active == ()
    with pytest.raises(WrongStatus, match="no active version to demote"):
        await registry.demote("math", reason="again", figures={})


@pytest.mark.parametrize("history", ["demoted", "rolled_back", "rejected", "failed_gate"])
async def test_demotion_never_brings_back_a_version_that_left_for_its_answers(
    registry: RegistryStore, history: str
) -> None:
    """The previous version is restored only when it is fit to serve. The store's own moves
    always leave it ``superseded``; the rule guards histories written by hand (an operator's
    SQL, a restore of a backup), so the test writes that history directly."""
    v1 = await active(registry)
    v2 = await active(registry)
    async with registry.database.write_session("history") as session:
        values: dict[str, object] = (
            {"gate_passed": False}
            if history == "failed_gate"
            else {"status": "rejected"}
            if history == "rejected"
            else {"retire_reason": history}
        )
        await session.execute(
            update(SpecialistVersionRow).where(SpecialistVersionRow.id == v1.id).values(**values)
        )
    demoted, restored = await registry.demote("math", reason="drift", figures={})
    assert (demoted.id, restored) == (v2.id, None)
    assert await registry.active_version("math") is None
    [event] = await registry.events("math", limit=1)
    assert event.figures == {"restored": None}


async def test_rollback_restores_the_previous_version_as_before(registry: RegistryStore) -> None:
    v1 = await active(registry)
    await active(registry)
    rolled, restored = await registry.rollback("math")
    assert (rolled.retire_reason, restored and restored.id) == ("rolled_back", v1.id)
    with pytest.raises(WrongStatus, match="no canary and no active version to roll back"):
        await registry.rollback("email")


async def test_thresholds_are_refitted_on_served_versions_only(registry: RegistryStore) -> None:
    served = await active(registry)
    candidate = await evaluated(registry)
    before = await registry.generation()
    refitted = await registry.set_threshold(
        served.id, 0.66, reason="refit on 400 audits", figures={"audits": 400}
    )
    assert refitted.threshold == 0.66 and await registry.generation() == before + 1
    [event] = await registry.events("math", limit=1)
    assert (event.kind, event.figures) == (
        EventKind.threshold_set,
        {"audits": 400, "previous": 0.8, "threshold": 0.66},
    )
    with pytest.raises(WrongStatus, match="candidate"):
        await registry.set_threshold(candidate.id, 0.5, reason="x", figures={})
    with pytest.raises(OutOfRange):
        await registry.set_threshold(served.id, 1.5, reason="x", figures={})


async def test_pausing_any_specialist_and_resuming_it(registry: RegistryStore) -> None:
    before = await registry.generation()
    await registry.pause("email", reason="customer complaint", actor="cli")  # a built-in one
    assert (await registry.snapshot()).paused == {"email"}
    assert await registry.generation() == before + 1
    with pytest.raises(PauseConflict, match="paused already"):
        await registry.pause("email", reason="again", actor="cli")
    await registry.resume("email", actor="cli")
    assert (await registry.snapshot()).paused == frozenset()
    with pytest.raises(PauseConflict, match="not paused"):
        await registry.resume("email", actor="cli")
    events = await registry.events("email")
    assert [(e.kind, e.version_id, e.reason, e.actor) for e in events] == [
        (EventKind.resumed, None, "resumed", "cli"),
        (EventKind.paused, None, "customer complaint", "cli"),
    ]
    assert await registry.generation() == before + 2


async def test_promotion_and_rollback_write_events(registry: RegistryStore) -> None:
    v1 = await active(registry)
    await active(registry)
    await registry.rollback("math", actor="cli")
    kinds = [(e.kind, e.version_id) for e in await registry.events()]
    assert kinds == [
        (EventKind.rolled_back, v1.id + 1),
        (EventKind.promoted, v1.id + 1),
        (EventKind.promoted, v1.id),
    ]
    assert (await registry.get_version(v1.id + 1)).retire_reason == "rolled_back"
