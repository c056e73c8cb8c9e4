"""The harness end to end, fast: real GSM8K samples, the real orchestrator and SDK, a real (tiny,
random) model on the local backend, the real pre-router, a real database — and a scripted lead
that knows the reference answers, so every figure is predictable."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from evals.cache import CACHE_FILE, ResultCache
from evals.data import DataSource
from evals.errors import JudgeError
from evals.harness import ALL_MODES, EvalPlan, evaluate, select_samples
from evals.records import ItemResult, item_from_json, item_to_json
from evals.report import summarise, write_report
from evals.samples import Sample
from evals.suites import get_suite
from orchestrator.cost import PriceBook
from orchestrator.lead import LeadConfig
from orchestrator.modes import Mode
from orchestrator.prerouter import MiniLMEmbedder, PreRouter
from orchestrator.run import Orchestrator
from orchestrator.testing import ScriptedLead, Step, failure, reply, tool_calls
from orchestrator.transcripts import TranscriptStore
from specialists import Catalog, ConfigurationError
from specialists.local import LocalBackend
from tests.helpers.stores import open_store

GSM8K = get_suite("gsm8k")
TINY = {"generation": {"max_tokens": 8}}


@pytest.fixture(scope="module")
async def tiny_backend(tiny_model_dir: Path) -> AsyncIterator[LocalBackend]:
    backend = LocalBackend(tiny_model_dir, base_ref="tiny")
    yield backend
    await backend.aclose()


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="module")
def samples(data_dir: Path) -> list[Sample]:
    return select_samples(GSM8K, DataSource(data_dir), limit=3, seed=1)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[TranscriptStore]:
    opened = await open_store(TranscriptStore, f"sqlite+aiosqlite:///{tmp_path / 'transcripts.db'}")
    yield opened
    await opened.database.close()


def answering(samples: list[Sample]) -> Callable[[dict[str, Any]], Step]:
    """A lead that knows every reference: with tools, it first asks the math specialist."""
    references = {sample.prompt: sample.reference for sample in samples}

    def step(body: dict[str, Any]) -> Step:
        messages = body["messages"]
        question = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        if body.get("tools") and not any(m["role"] == "tool" for m in messages):
            return tool_calls(("math_specialist", {"request": question}))
        return reply(f"So the answer is {references[question]}.")

    return step


def orchestrator(
    backend: LocalBackend,
    embedder: MiniLMEmbedder,
    store: TranscriptStore,
    lead: ScriptedLead | None,
    **math: Any,
) -> Orchestrator:
    catalog = Catalog.default().with_overrides({"math": {**TINY, **math}, "code": TINY})
    return Orchestrator(
        catalog=catalog,
        backend=backend,
        prerouter=PreRouter(catalog, embedder),
        lead=None
        if lead is None
        else LeadConfig(
            model="gpt-4o-mini", base_url=lead.base_url, api_key="sk-test", max_retries=0
        ),
        store=store,
        prices=PriceBook(slm_per_million=0.02),
    )


async def run(
    orch: Orchestrator, samples: list[Sample], out: Path, modes: tuple[Mode, ...] = ALL_MODES
):
    plan = EvalPlan(suite="gsm8k", modes=modes, limit=len(samples), seed=1, concurrency=4)
    return await evaluate(orch, GSM8K, samples, plan, out, slm_base="tiny")


async def test_every_mode_answers_the_same_samples_and_a_rerun_costs_nothing(
    tiny_backend: LocalBackend,
    embedder: MiniLMEmbedder,
    samples: list[Sample],
    database_url: str,
    tmp_path: Path,
) -> None:
    store = await open_store(TranscriptStore, database_url)
    try:
        with ScriptedLead([answering(samples)], repeat_last=True) as lead:
            orch = orchestrator(tiny_backend, embedder, store, lead)
            outcome = await run(orch, samples, tmp_path)
            requests, batches = len(lead.requests), tiny_backend.batches_run
            runs = len(await store.list_runs(limit=100))
            again = await run(orch, samples, tmp_path)
        assert len(lead.requests) == requests and tiny_backend.batches_run == batches
        assert len(await store.list_runs(limit=100)) == runs == 12
    finally:
        await store.database.close()

    ids = [s.id for s in samples]
    assert list(outcome.items) == ["llm", "router", "cascade", "slm"]
    for mode, items in outcome.items.items():
        assert [i.sample_id for i in items] == ids and {i.mode for i in items} == {mode}
    llm, router, cascade, slm = outcome.items.values()
    assert all(i.score == 1.0 and i.tool_calls == 0 and i.slm_tokens == 0 for i in llm)
    assert all(i.score == 1.0 and i.tool_calls == 1 and i.specialists == ["math"] for i in router)
    assert all(i.route == "slm:math" and i.without_lead and i.tool_calls == 1 for i in slm)
    assert all(i.score == 0.0 for i in slm)  # a random 2-layer model does not do arithmetic
    # the random model is never 75 % sure: every draft goes to the lead, which asks again
    for item in cascade:
        assert item.route == "cascade:escalated:math" and item.escalated and item.score == 1.0
        assert item.tool_calls == 2 and item.draft is not None and item.draft.score == 0.0
        assert 0 < item.draft.confidence < 0.75 and item.draft.cost_usd == item.slm_cost_usd > 0
    assert requests == 3 * (1 + 2 + 2)  # llm: one call; router and cascade: tool call, answer
    assert (outcome.ran, outcome.reused) == (12, 0) and (again.ran, again.reused) == (0, 12)
    assert again.items == outcome.items and again.config_hashes == outcome.config_hashes

    summary = summarise(outcome)
    paths = write_report(outcome, summary, tmp_path)
    names = {p.relative_to(tmp_path).as_posix() for p in paths}
    assert names == {
        "samples.jsonl",
        "results/llm.jsonl",
        "results/router.jsonl",
        "results/cascade.jsonl",
        "results/slm.jsonl",
        "summary.json",
        "report.md",
        "accuracy_vs_cost.png",
        "latency_cdf.png",
    }
    assert [json.loads(line)["id"] for line in (tmp_path / "samples.jsonl").open()] == ids
    saved = (tmp_path / "results" / "cascade.jsonl").read_text().splitlines()
    assert [item_from_json(line) for line in saved] == cascade
    data = json.loads((tmp_path / "summary.json").read_text())
    assert data["sample_ids"] == ids and data["metrics"]["llm"]["accuracy"] == 1.0
    assert data["metrics"]["slm"]["without_lead_share"] == 1.0
    assert data["cascade_curve"]["points"][0]["threshold"] == 0.0
    # at threshold 0 every (valid) draft is taken: none is valid, so the curve is flat here
    assert data["cascade_curve"]["points"][0]["accuracy"] == 1.0
    assert (tmp_path / "accuracy_vs_cost.png").read_bytes()[:4] == b"\x89PNG"
    report = (tmp_path / "report.md").read_text()
    assert "| llm (gpt-4o-mini alone) | 100 % [100-100] |" in report
    assert "**gsm8k, 3 samples:** gpt-4o-mini alone 100 %" in report


async def test_a_new_specialist_setting_reruns_only_the_modes_that_use_specialists(
    tiny_backend: LocalBackend,
    embedder: MiniLMEmbedder,
    samples: list[Sample],
    store: TranscriptStore,
    tmp_path: Path,
) -> None:
    with ScriptedLead([answering(samples)], repeat_last=True) as lead:
        first = await run(orchestrator(tiny_backend, embedder, store, lead), samples, tmp_path)
        trusting = orchestrator(tiny_backend, embedder, store, lead, confidence_threshold=0.0)
        second = await run(trusting, samples, tmp_path)
    assert first.config_hashes["llm"] == second.config_hashes["llm"]
    assert all(first.config_hashes[m] != second.config_hashes[m] for m in ("router", "slm"))
    assert (second.ran, second.reused) == (9, 3)  # the lead-alone baseline was kept
    assert second.items["llm"] == first.items["llm"]


async def test_a_failed_run_is_not_kept_and_is_retried(
    tiny_backend: LocalBackend,
    embedder: MiniLMEmbedder,
    samples: list[Sample],
    store: TranscriptStore,
    tmp_path: Path,
) -> None:
    with ScriptedLead([failure(503), answering(samples)], repeat_last=True) as lead:
        orch = orchestrator(tiny_backend, embedder, store, lead)
        first = await run(orch, samples, tmp_path, modes=(Mode.llm,))
        second = await run(orch, samples, tmp_path, modes=(Mode.llm,))
    failed = [i for i in first.items["llm"] if i.answer is None]
    assert len(failed) == 1 and failed[0].score == 0.0 and "503" in (failed[0].error or "")
    assert (second.ran, second.reused) == (1, 2)
    assert all(i.score == 1.0 for i in second.items["llm"])


async def test_modes_that_need_a_lead_or_a_judge_fail_before_any_run(
    tiny_backend: LocalBackend,
    embedder: MiniLMEmbedder,
    samples: list[Sample],
    store: TranscriptStore,
    tmp_path: Path,
) -> None:
    orch = orchestrator(tiny_backend, embedder, store, lead=None)
    plan = EvalPlan(suite="gsm8k", modes=(Mode.slm, Mode.router))
    with pytest.raises(ConfigurationError, match="mode 'router' needs a lead model"):
        await evaluate(orch, GSM8K, samples, plan, tmp_path, slm_base="tiny")
    plan = EvalPlan(suite="mt_bench", modes=(Mode.slm,))
    with pytest.raises(JudgeError, match="UNDERSTUDY_EVAL_JUDGE_MODEL"):
        await evaluate(orch, get_suite("mt_bench"), samples, plan, tmp_path, slm_base="tiny")
    assert not (tmp_path / CACHE_FILE).exists()


def test_samples_are_a_seeded_shuffle_that_larger_limits_extend(data_dir: Path) -> None:
    source = DataSource(data_dir)
    five = select_samples(GSM8K, source, limit=5, seed=3)
    ten = select_samples(GSM8K, source, limit=10, seed=3)
    assert [s.id for s in ten[:5]] == [s.id for s in five]
    assert [s.id for s in select_samples(GSM8K, source, limit=5, seed=3)] == [s.id for s in five]
    assert [s.id for s in select_samples(GSM8K, source, limit=5, seed=4)] != [s.id for s in five]
    assert len(select_samples(GSM8K, source, limit=100_000, seed=3)) == 1319


def cached_item(sample_id: str) -> ItemResult:
    return ItemResult(
        suite="gsm8k",
        sample_id=sample_id,
        mode="llm",
        config_hash="h",
        run_id="r",
        answer="4",
        route="lead",
        specialists=[],
        escalated=False,
        degraded=False,
        confidence=None,
        lead_input_tokens=8,
        lead_output_tokens=2,
        slm_prompt_tokens=0,
        slm_completion_tokens=0,
        cost_usd=0.01,
        slm_cost_usd=0.0,
        lead_only_cost_usd=0.01,
        latency_ms=5.0,
        tool_calls=0,
        score=1.0,
    )


def test_the_cache_survives_a_line_torn_by_a_crash(tmp_path: Path) -> None:
    path = tmp_path / CACHE_FILE
    with ResultCache(path) as cache:
        cache.put(cached_item("a"))
        cache.put(cached_item("b"))
        cache.put(replace(cached_item("never"), answer=None))  # failed: not kept
    with path.open("a") as handle:
        handle.write(item_to_json(cached_item("c"))[:40])  # killed mid-write
    with ResultCache(path) as cache:
        assert len(cache) == 2 and cache.unreadable_lines == 1
        cache.put(cached_item("d"))
    with ResultCache(path) as cache:
        assert len(cache) == 3 and cache.get(("gsm8k", "d", "llm", "h")) == cached_item("d")
        assert cache.get(("gsm8k", "d", "llm", "other-config")) is None


OLD_RELEASE_LINE = json.dumps(
    {
        "suite": "gsm8k",
        "sample_id": "old",
        "mode": "llm",
        "config_hash": "h",
        "run_id": "r",
        "answer": "4",
        "route": "lead",
        "specialists": [],
        "escalated": False,
        "degraded": False,
        "confidence": None,
        "error": None,
        "lead_tokens": 10,
        "slm_tokens": 0,
        "cost_usd": 0.01,
        "slm_cost_usd": 0.0,
        "lead_only_cost_usd": 0.01,
        "latency_ms": 5.0,
        "tool_calls": 0,
        "score": 1.0,
        "score_details": {},
        "draft": None,
    }
)
"""A cache line as the release before run outcomes had failure kinds wrote it."""


def test_an_older_releases_cache_lines_are_misses_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / CACHE_FILE
    path.write_text(OLD_RELEASE_LINE + "\n")
    with ResultCache(path) as cache:
        assert len(cache) == 0 and cache.unreadable_lines == 1  # the item runs again
        cache.put(cached_item("old"))
    with ResultCache(path) as cache:
        assert cache.get(("gsm8k", "old", "llm", "h")) == cached_item("old")


def test_one_writer_per_output_directory(tmp_path: Path) -> None:
    with ResultCache(tmp_path / CACHE_FILE), pytest.raises(ConfigurationError, match="another"):
        ResultCache(tmp_path / CACHE_FILE)
