"""Serving follows the registry: the effective catalog, and a running orchestrator kept in step
(real registry on SQLite and PostgreSQL, real local backend with real LoRA adapters, vLLM's
endpoints played by a real HTTP server; real vLLM restarts in tests/integration)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from distill.catalog import (
    effective_catalog,
    known_catalog,
    known_specialist,
    served_catalog,
    version_tag,
)
from distill.promotion import adapter_sha256
from distill.reconcile import CatalogSync, RegistryNotApplied
from distill.registry import (
    RegistrySnapshot,
    RegistryStore,
    SpecialistDefinition,
    SpecialistVersion,
)
from orchestrator.audits import AuditPolicy, AuditSampler, AuditStore
from orchestrator.canary import canary_point
from orchestrator.lead import LeadConfig
from orchestrator.run import Orchestrator
from orchestrator.testing import ScriptedLead, Step, reply, tool_calls
from serving.settings import get_settings
from specialists.adapters import adapter_name, served_adapter_name
from specialists.backend import AdapterInUse, ChatMessage
from specialists.catalog import Catalog
from specialists.errors import (
    AdaptersNotServed,
    ModelError,
    SpecialistError,
    SpecialistPaused,
    UnknownSpecialistError,
)
from specialists.local import LocalBackend
from specialists.vllm_client import VLLMBackend
from tests.helpers.http_server import serve
from tests.helpers.registry import promoted
from tests.helpers.stores import open_store
from tests.helpers.vllm import ScriptedVLLM

SHORT = {"generation": {"max_tokens": 8}}
GRACE_S = 60.0
"""How long the syncs keep a superseded adapter loaded; tests move their clock past it."""
QUESTION: list[ChatMessage] = [{"role": "user", "content": "What is 2 + 2?"}]
MUSEUM = SpecialistDefinition(
    name="museum",
    description="Answers questions about the museum's opening hours.",
    system_prompt="You answer museum opening-hours questions. Reply with the answer only.",
    validator="nonempty",
    examples=("When does the museum open on Sunday?",),
    max_tokens=8,
)


@pytest.fixture
async def registry(database_url: str) -> AsyncIterator[RegistryStore]:
    store = await open_store(RegistryStore, database_url)
    yield store
    await store.database.close()


@pytest.fixture(scope="module")
async def backend(tiny_model_dir: Path) -> AsyncIterator[LocalBackend]:
    local = LocalBackend(tiny_model_dir, base_ref="tiny")
    yield local
    await local.aclose()


class Clock:
    """The time the syncs see: now, until the test says it is later."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def after_the_grace(self) -> None:
        """Just past the grace, counted from the latest moment anything left the served set
        (the registry's real time, or this clock's)."""
        self.now = max(self.now, datetime.now(UTC)) + timedelta(seconds=GRACE_S + 1)


def base_catalog() -> Catalog:
    return Catalog.default().with_overrides({"math": SHORT, "email": SHORT, "code": SHORT})


def test_the_registry_overlays_the_catalog_it_is_given(tiny_lora_dir: Path) -> None:
    base = base_catalog().with_overrides({"email": {"confidence_threshold": 0.3}})
    math = active_version("math", tiny_lora_dir, threshold=0.81)
    museum = active_version("museum", tiny_lora_dir, threshold=None)
    orphan = active_version("gone", tiny_lora_dir, threshold=None)
    snapshot = RegistrySnapshot(3, (math, museum, orphan), {"museum": MUSEUM})
    catalog = effective_catalog(base, snapshot)
    assert catalog.names == ["math", "email", "code", "museum"]
    assert catalog.get("math").adapter == tiny_lora_dir
    assert catalog.get("math").confidence_threshold == 0.81
    assert catalog.get("math").description == base.get("math").description
    assert catalog.get("email") == base.get("email")  # untouched, settings override kept
    new = catalog.get("museum")
    assert (new.description, new.examples, new.adapter) == (
        MUSEUM.description,
        MUSEUM.examples,
        tiny_lora_dir,
    )
    assert new.generation.max_tokens == 8
    assert new.confidence_threshold == 0.5  # not calibrated: the catalog's default
    pending = known_catalog(base, RegistrySnapshot(0, (), {"museum": MUSEUM}))
    assert (
        pending.get("museum").adapter is None
        and "museum"
        not in effective_catalog(base, RegistrySnapshot(0, (), {"museum": MUSEUM})).names
    )


async def test_a_running_orchestrator_follows_promotions_and_rollbacks(
    registry: RegistryStore, backend: LocalBackend, tiny_lora_dir: Path
) -> None:
    lead = LeadConfig(model="gpt-4o-mini", base_url="http://127.0.0.1:9/v1", api_key="sk-x")
    orchestrator = Orchestrator(catalog=base_catalog(), backend=backend, lead=lead)
    sync = CatalogSync(
        registry,
        orchestrator,
        base=base_catalog(),
        prerouter_factory=lambda _c: None,
        unload_after_s=GRACE_S,
    )
    assert await sync.sync()  # the first sync always applies
    assert not await sync.sync()  # nothing changed since
    plain = await orchestrator.run("What is 2 + 2?", "slm", specialist="math")

    await registry.define_specialist(MUSEUM)
    await promoted(registry, "math", tiny_lora_dir)
    await promoted(registry, "museum", tiny_lora_dir)
    assert await sync.sync()
    assert orchestrator.catalog.get("math").adapter == tiny_lora_dir
    assert orchestrator.catalog.get("math").confidence_threshold == 0.42
    tools = [tool.name for tool in orchestrator.lineups.main.agents[0].tools]  # the lead's tools
    assert "museum_specialist" in tools and "math_specialist" in tools
    adapted = await orchestrator.run("What is 2 + 2?", "slm", specialist="math")
    assert adapted.answer != plain.answer  # the adapter is in use, loaded without a restart

    await registry.rollback("math")
    await registry.rollback("museum")
    assert await sync.sync()
    assert orchestrator.catalog.get("math").adapter is None
    assert "museum" not in orchestrator.catalog.names
    assert "museum_specialist" not in [t.name for t in orchestrator.lineups.main.agents[0].tools]
    again = await orchestrator.run("What is 2 + 2?", "slm", specialist="math")
    assert again.answer == plain.answer


async def test_the_background_sync_picks_a_promotion_up_within_its_interval(
    registry: RegistryStore, backend: LocalBackend, tiny_lora_dir: Path
) -> None:
    orchestrator = Orchestrator(catalog=base_catalog(), backend=backend)
    sync = CatalogSync(
        registry,
        orchestrator,
        base=base_catalog(),
        prerouter_factory=lambda _c: None,
        interval_s=0.05,
        unload_after_s=GRACE_S,
    )
    async with sync.running():
        await promoted(registry, "math", tiny_lora_dir)
        async with asyncio.timeout(10):
            while orchestrator.catalog.get("math").adapter is None:
                await asyncio.sleep(0.02)
    assert sync.generation == await registry.generation()


async def test_a_broken_adapter_keeps_the_old_catalog_and_is_retried(
    registry: RegistryStore, backend: LocalBackend, tiny_lora_dir: Path, tmp_path: Path
) -> None:
    orchestrator = Orchestrator(catalog=base_catalog(), backend=backend)
    sync = CatalogSync(
        registry,
        orchestrator,
        base=base_catalog(),
        prerouter_factory=lambda _c: None,
        unload_after_s=GRACE_S,
    )
    await sync.sync()
    missing = tmp_path / "vanished"
    missing.mkdir()
    for file in tiny_lora_dir.iterdir():
        (missing / file.name).write_bytes(file.read_bytes())
    config = missing / "adapter_config.json"  # new content: a name the backend never loaded
    config.write_text(config.read_text() + "\n")
    await promoted(registry, "math", missing)
    for file in missing.iterdir():
        file.unlink()
    with pytest.raises(ModelError, match="adapter_config.json"):
        await sync.sync()
    assert orchestrator.catalog.get("math").adapter is None  # still serving the old catalog
    assert sync.generation == 0


def active_version(name: str, adapter: Path, *, threshold: float | None) -> SpecialistVersion:
    now = datetime.now(UTC)
    return SpecialistVersion(
        id=hash(name) % 1000,
        specialist=name,
        version=1,
        status="active",
        adapter_path=str(adapter),
        adapter_sha256="0" * 64,
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


async def test_a_specialist_being_trained_is_known_before_it_is_served(
    registry: RegistryStore,
) -> None:
    base, database = get_settings().catalog(), registry.database
    with pytest.raises(UnknownSpecialistError, match="museum"):
        await known_specialist(database, base, "museum")
    await registry.define_specialist(MUSEUM)
    museum = await known_specialist(database, base, "museum")
    assert (museum.system_prompt, museum.adapter) == (MUSEUM.system_prompt, None)
    assert "museum" not in (await served_catalog(database, base)).names


async def test_a_run_in_flight_on_v1_finishes_on_v1_after_v2_is_promoted(
    registry: RegistryStore, backend: LocalBackend, tiny_lora_dir: Path, tiny_lora_dir_2: Path
) -> None:
    """The lead's first turn is held until v2 is promoted and synced; the math call it then
    makes still goes to v1, the version the run started with. The next run gets v2. v1 stays
    loaded while the run is in flight and after it finished, until the grace has passed."""
    request = "What is 2 + 2?"
    started, swapped = threading.Event(), threading.Event()

    def after_the_swap(_body: dict) -> Step:
        started.set()
        swapped.wait(timeout=120)
        return tool_calls(("math_specialist", {"request": request}))

    def echo_the_tool_output(body: dict) -> Step:
        return reply(body["messages"][-1]["content"])

    script = [after_the_swap, echo_the_tool_output]
    with ScriptedLead(script) as lead:
        config = LeadConfig(model="gpt-4o-mini", base_url=lead.base_url, api_key="sk-x")
        orchestrator = Orchestrator(catalog=base_catalog(), backend=backend, lead=config)
        clock = Clock()
        sync = CatalogSync(
            registry,
            orchestrator,
            base=base_catalog(),
            prerouter_factory=lambda _c: None,
            unload_after_s=GRACE_S,
            clock=clock,
        )
        await promoted(registry, "math", tiny_lora_dir)
        await sync.sync()
        v1 = orchestrator.catalog.get("math")
        in_flight = asyncio.create_task(orchestrator.run(request, "router"))
        await asyncio.to_thread(started.wait, 120)
        await promoted(registry, "math", tiny_lora_dir_2)
        assert await sync.sync()
        loaded_in_flight = await backend.loaded_adapters()
        swapped.set()
        first = await in_flight
        assert not await sync.sync()
        loaded_after_the_run = await backend.loaded_adapters()
        lead.enqueue(tool_calls(("math_specialist", {"request": request})), echo_the_tool_output)
        second = await orchestrator.run(request, "router")
    v2 = orchestrator.catalog.get("math")
    expected = [(await backend.generate(s, QUESTION)).text for s in (v1, v2)]
    assert (v1.version or "").startswith("v1-") and (v2.version or "").startswith("v2-")
    assert expected[0] != expected[1]
    assert [json.loads(r.answer or "")["answer"] for r in (first, second)] == expected
    names = [served_adapter_name(s) for s in (v1, v2)]
    assert set(names) <= loaded_in_flight and set(names) <= loaded_after_the_run
    clock.after_the_grace()
    assert not await sync.sync()
    loaded = await backend.loaded_adapters()
    assert names[0] not in loaded and names[1] in loaded


async def test_a_superseded_adapter_waits_for_its_uses_and_the_local_backend_frees_it(
    registry: RegistryStore, tiny_model_dir: Path, tiny_lora_dir: Path, tiny_lora_dir_2: Path
) -> None:
    """The grace has passed, but v1 is still held (a generation, or a gate evaluation, in
    flight): it stays until released. Unloading deletes its LoRA weights from the model; the
    last adapter unloaded leaves the bare base model. Rollbacks switch names the same way."""
    local = LocalBackend(tiny_model_dir, base_ref="tiny")  # its own: its weights are counted
    clock = Clock()
    orchestrator = Orchestrator(catalog=base_catalog(), backend=local)
    sync = CatalogSync(
        registry,
        orchestrator,
        base=base_catalog(),
        prerouter_factory=lambda _c: None,
        unload_after_s=GRACE_S,
        clock=clock,
    )

    def weights() -> int:
        return sum(parameter.numel() for parameter in local._model.parameters())

    try:
        await local.warm_up()
        bare = weights()
        await promoted(registry, "math", tiny_lora_dir)
        await sync.sync()
        v1 = served_adapter_name(orchestrator.catalog.get("math"))
        one = weights()
        await promoted(registry, "math", tiny_lora_dir_2)
        await sync.sync()
        v2 = served_adapter_name(orchestrator.catalog.get("math"))
        two = weights()
        clock.after_the_grace()
        with local.adapter_uses.hold(v1):
            with pytest.raises(AdapterInUse, match="1 use"):
                await local.unload_adapter(v1)
            assert not await sync.sync()
            held = await local.loaded_adapters()
        assert not await sync.sync()
        assert (held, await local.loaded_adapters(), weights()) == ({v1, v2}, {v2}, one)

        await registry.rollback("math")  # v1 active again (loaded anew), v2 superseded
        await sync.sync()
        assert await local.loaded_adapters() == {v1, v2}
        clock.after_the_grace()
        await sync.sync()
        assert await local.loaded_adapters() == {v1}
        await local.generate(orchestrator.catalog.get("math"), QUESTION)  # v1 still answers

        await registry.rollback("math")  # no version left: the base model alone
        await sync.sync()
        clock.after_the_grace()
        await sync.sync()
        await local.unload_adapter(v1)  # unloaded already: nothing to do
        assert (await local.loaded_adapters(), weights()) == (set(), bare)
        assert bare < one < two
    finally:
        await local.aclose()


async def test_processes_sharing_a_vllm_unload_a_superseded_version_once_and_retry_failures(
    registry: RegistryStore, tiny_lora_dir: Path, tiny_lora_dir_2: Path
) -> None:
    """Two serving processes follow the registry against one vLLM. Once the grace passed,
    whichever sweeps first unloads v1; a 503 is logged and retried at the next poll, and a
    404 (the other process was first) is no error. v2, served, is never unloaded."""
    server = ScriptedVLLM()
    clock = Clock()
    with serve(server) as (root, seen):
        clients = [VLLMBackend(f"{root}/v1", base_model_name="tiny", max_retries=0) for _ in "ab"]
        syncs = [
            CatalogSync(
                registry,
                Orchestrator(catalog=base_catalog(), backend=client),
                base=base_catalog(),
                prerouter_factory=lambda _c: None,
                unload_after_s=GRACE_S,
                clock=clock,
            )
            for client in clients
        ]
        v1 = adapter_name("math", version_tag(await promoted(registry, "math", tiny_lora_dir)))
        for sync in syncs:
            await sync.sync()
        v2 = adapter_name("math", version_tag(await promoted(registry, "math", tiny_lora_dir_2)))
        for sync in syncs:
            await sync.sync()
        assert not await syncs[0].sync()  # within the grace: nothing is unloaded
        assert set(server.loaded) == {v1, v2}

        clock.after_the_grace()
        server.failing_unloads = 1
        assert not await syncs[0].sync()  # the 503 does not fail the sync
        assert syncs[0].last_error is None and set(server.loaded) == {v1, v2}
        await asyncio.gather(*(sync.sync() for sync in syncs))
        assert set(server.loaded) == {v2}
        await clients[1].unload_adapter(v1)  # the other process, a sweep behind: a 404
        await asyncio.gather(*(sync.sync() for sync in syncs))
        for client in clients:
            await client.aclose()
    unloads = [body["lora_name"] for path, body in seen if path.endswith("/unload_lora_adapter")]
    assert v2 not in unloads and set(unloads) == {v1}
    assert not any(body.get("load_inplace") for _path, body in seen)
    assert set(server.loaded) == {v2}


async def test_vllm_gets_the_served_adapters_on_the_first_sync_and_after_it_restarts(
    registry: RegistryStore, tiny_lora_dir: Path, tiny_lora_dir_2: Path
) -> None:
    base = base_catalog().with_overrides({"email": {"adapter": str(tiny_lora_dir_2)}})
    email = f"email@{adapter_sha256(tiny_lora_dir_2)[:8]}"  # from settings: named by content
    server = ScriptedVLLM()
    with serve(server) as (root, _seen):
        vllm = VLLMBackend(f"{root}/v1", base_model_name="tiny", max_retries=0)
        orchestrator = Orchestrator(catalog=base, backend=vllm)
        sync = CatalogSync(
            registry,
            orchestrator,
            base=base,
            prerouter_factory=lambda _c: None,
            unload_after_s=GRACE_S,
        )
        await promoted(registry, "math", tiny_lora_dir)  # by a CLI that had no vLLM to tell
        assert await sync.sync()
        math = f"math@v1-{adapter_sha256(tiny_lora_dir)[:8]}"
        wanted = {math: str(tiny_lora_dir.resolve()), email: str(tiny_lora_dir_2.resolve())}
        assert server.loaded == wanted

        server.restart()
        with pytest.raises(AdaptersNotServed, match=f"'math' needs adapter '{math}'"):
            await vllm.require_adapters(orchestrator.catalog)
        degraded = await orchestrator.run("What is 2 + 2?", "slm", specialist="math")
        assert not await sync.sync()  # the registry did not move, but vLLM came back empty
        assert server.loaded == wanted
        await vllm.require_adapters(orchestrator.catalog)
        answered = await orchestrator.run("What is 2 + 2?", "slm", specialist="math")
        await vllm.aclose()
    assert degraded.failure is not None and math in degraded.failure.message
    assert (answered.answer, answered.failure) == ("ok", None)


async def test_an_adapter_vllm_refuses_keeps_neither_the_others_off_nor_quiet(
    registry: RegistryStore, tiny_lora_dir: Path, tiny_lora_dir_2: Path
) -> None:
    await registry.define_specialist(MUSEUM)
    math = await promoted(registry, "math", tiny_lora_dir)
    museum = await promoted(registry, "museum", tiny_lora_dir_2)
    refused = adapter_name("math", version_tag(math))
    server = ScriptedVLLM(refuse=frozenset({refused}))
    with serve(server) as (root, _seen):
        vllm = VLLMBackend(f"{root}/v1", base_model_name="tiny", max_retries=0)
        orchestrator = Orchestrator(catalog=base_catalog(), backend=vllm)
        sync = CatalogSync(
            registry,
            orchestrator,
            base=base_catalog(),
            prerouter_factory=lambda _c: None,
            unload_after_s=GRACE_S,
        )
        with pytest.raises(SpecialistError, match="greater than max_lora_rank"):
            await sync.sync()
        with pytest.raises(RegistryNotApplied, match=f"last attempt: specialist '{refused}'"):
            await sync.check()
        await vllm.aclose()
    assert list(server.loaded) == [adapter_name("museum", version_tag(museum))]
    assert "museum" not in orchestrator.catalog.names  # the old catalog stays until all load


def _run_ids(*, canary: bool, share: float, count: int) -> list[str]:
    """``count`` run ids the canary choice puts in (or out of) a canary of ``share``."""
    ids = (f"run-{n}" for n in range(10_000))
    return [i for i in ids if (canary_point(i) < share) == canary][:count]


async def test_a_canary_answers_its_share_and_its_audits_carry_its_version(
    registry: RegistryStore, backend: LocalBackend, tiny_lora_dir: Path, tiny_lora_dir_2: Path
) -> None:
    audits = AuditStore(registry.database)
    orchestrator = Orchestrator(
        catalog=base_catalog(),
        backend=backend,
        audits=AuditSampler(audits, AuditPolicy(rate=1.0, floor=1.0)),
    )
    sync = CatalogSync(
        registry,
        orchestrator,
        base=base_catalog(),
        prerouter_factory=lambda _c: None,
        unload_after_s=GRACE_S,
    )
    v1 = await promoted(registry, "math", tiny_lora_dir)
    v2 = await registry.add_version(
        "math",
        adapter_path=str(tiny_lora_dir_2),
        adapter_sha256=adapter_sha256(tiny_lora_dir_2),
        base_model="tiny",
        lora_rank=8,
    )
    await registry.record_evaluation(v2.id, metrics={}, threshold=0.5, gate_passed=True)
    await registry.start_canary(v2.id, 0.25, actor="test")
    assert await sync.sync()
    assert orchestrator.catalog.get("math").version == version_tag(v1)
    [(share, tier)] = [(s, lineup.catalog) for s, lineup in orchestrator.lineups.tiers]
    assert (share, tier.get("math").version) == (0.25, version_tag(v2))

    question = "What is 2 + 2?"
    inside = _run_ids(canary=True, share=0.25, count=2)
    outside = _run_ids(canary=False, share=0.25, count=2)
    results = {
        run_id: await orchestrator.run(question, "slm", specialist="math", run_id=run_id)
        for run_id in inside + outside
    }
    messages: list[ChatMessage] = [{"role": "user", "content": question}]
    canary_answer = (await backend.generate(tier.get("math"), messages)).text
    active_answer = (await backend.generate(orchestrator.catalog.get("math"), messages)).text
    assert canary_answer != active_answer
    assert [results[i].answer for i in inside] == [canary_answer] * 2
    assert [results[i].answer for i in outside] == [active_answer] * 2
    labels = {a.run_id: a.version for a in await audits.list_audits(specialist="math")}
    assert labels == {
        **dict.fromkeys(inside, version_tag(v2)),
        **dict.fromkeys(outside, version_tag(v1)),
    }


async def test_a_canary_only_specialist_leaves_the_rest_of_its_traffic_to_the_lead(
    registry: RegistryStore, backend: LocalBackend, tiny_lora_dir: Path
) -> None:
    routed: list[list[str]] = []

    def prerouter_factory(catalog: Catalog) -> None:
        routed.append(catalog.names)

    lead = LeadConfig(model="gpt-4o-mini", base_url="http://127.0.0.1:9/v1", api_key="sk-x")
    orchestrator = Orchestrator(catalog=base_catalog(), backend=backend, lead=lead)
    sync = CatalogSync(
        registry,
        orchestrator,
        base=base_catalog(),
        prerouter_factory=prerouter_factory,
        unload_after_s=GRACE_S,
    )
    await registry.define_specialist(MUSEUM)
    version = await registry.add_version(
        "museum",
        adapter_path=str(tiny_lora_dir),
        adapter_sha256=adapter_sha256(tiny_lora_dir),
        base_model="tiny",
        lora_rank=8,
    )
    await registry.record_evaluation(version.id, metrics={}, threshold=0.5, gate_passed=True)
    await registry.start_canary(version.id, 0.1, actor="test")
    assert await sync.sync()
    main, tier = orchestrator.lineups.main, orchestrator.lineups.tiers[0][1]
    assert "museum" not in main.catalog.names and "museum" in tier.catalog.names
    assert main.agents is not None and tier.agents is not None
    assert "museum_specialist" not in [tool.name for tool in main.agents[0].tools]
    assert "museum_specialist" in [tool.name for tool in tier.agents[0].tools]
    # the tier routes to one more specialist: it gets a pre-router of its own
    assert routed == [main.catalog.names, tier.catalog.names]
    [outside] = _run_ids(canary=False, share=0.1, count=1)
    with pytest.raises(UnknownSpecialistError, match="museum"):
        await orchestrator.run("When do you open?", "slm", specialist="museum", run_id=outside)


async def test_a_paused_specialist_is_served_nowhere_and_refused_by_name(
    registry: RegistryStore, backend: LocalBackend, tiny_lora_dir: Path
) -> None:
    routed: list[list[str]] = []

    def prerouter_factory(catalog: Catalog) -> None:
        routed.append(catalog.names)

    lead = LeadConfig(model="gpt-4o-mini", base_url="http://127.0.0.1:9/v1", api_key="sk-x")
    orchestrator = Orchestrator(catalog=base_catalog(), backend=backend, lead=lead)
    sync = CatalogSync(
        registry,
        orchestrator,
        base=base_catalog(),
        prerouter_factory=prerouter_factory,
        unload_after_s=GRACE_S,
    )
    await promoted(registry, "math", tiny_lora_dir)
    generation = await registry.generation()
    await registry.pause("math", reason="wrong answers reported", actor="test")
    await registry.pause("email", reason="a built-in one, no versions", actor="test")
    assert await sync.sync() and sync.generation == generation + 2
    assert orchestrator.catalog.names == ["code"]
    assert orchestrator.lineups.main.agents is not None
    tools = [tool.name for tool in orchestrator.lineups.main.agents[0].tools]
    assert "math_specialist" not in tools and "email_specialist" not in tools
    assert routed[-1] == ["code"]  # the pre-router cannot pick them
    with pytest.raises(SpecialistPaused, match="understudy specialists resume math"):
        await orchestrator.run("What is 2 + 2?", "slm", specialist="math")

    await registry.resume("math", actor="test")
    assert await sync.sync()
    assert orchestrator.catalog.names == ["math", "code"]
    assert orchestrator.catalog.get("math").adapter == tiny_lora_dir
    assert routed[-1] == ["math", "code"]
