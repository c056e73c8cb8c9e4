"""``distill propose``: transcripts in a real store, the real MiniLM embedder and pre-router."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from distill.config import DEFAULT_CLUSTER_THRESHOLD, DEFAULT_COVERAGE_THRESHOLD, ProposalConfig
from distill.proposals import accept, cluster, lead_answered, propose
from distill.registry import Proposal, RegistryStore
from orchestrator.outcome import Failure, FailureKind
from orchestrator.prerouter import MiniLMEmbedder
from orchestrator.transcripts import TranscriptStore
from specialists.backend import ChatMessage, FunctionCall
from specialists.catalog import Catalog
from tests.distill.helpers import (
    EPOCH,
    HOURS_ANSWER,
    delegated_run,
    lead_run,
    museum_hours_questions,
)
from tests.helpers.stores import open_store

MIN_RUNS = 12


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[TranscriptStore]:
    opened = await open_store(TranscriptStore, database_url)
    yield opened
    await opened.database.close()


async def seed(store: TranscriptStore, data_dir: Path) -> float:
    """The lead's traffic over three days; returns the lead cost of the museum-hours runs.

    - 24 museum-hours questions the lead answered itself: a task no specialist covers;
    - 20 GSM8K questions the lead answered itself: many, but the math specialist covers them;
    - 15 GSM8K questions delegated to the math specialist: not the lead's own work;
    - 6 assorted requests: too few to be a task.
    """
    gsm8k = [
        json.loads(line)["question"]
        for line in (data_dir / "gsm8k" / "test.jsonl").read_text().splitlines()[:35]
    ]
    minute = 0
    museum_cost = 0.0
    for question in museum_hours_questions(24):
        run = lead_run(question, HOURS_ANSWER, minute=minute, cost=0.003)
        museum_cost += run.cost_usd
        await store.save_run(run)
        minute += 120
    for question in gsm8k[:20]:
        await store.save_run(lead_run(question, "The answer is 42.", minute=minute))
        minute += 60
    for question in gsm8k[20:]:
        await store.save_run(delegated_run(question, "42", "math", minute=minute))
        minute += 60
    for question in (
        "Write a haiku about autumn.",
        "Who painted the Mona Lisa?",
        "Translate 'good night' into French.",
        "Suggest a name for a bakery.",
        "What is the capital of Australia?",
        "Give me three tips for better sleep.",
    ):
        await store.save_run(lead_run(question, "…", minute=minute))
        minute += 60
    return museum_cost


async def propose_with_defaults(
    registry: RegistryStore,
    store: TranscriptStore,
    embedder: MiniLMEmbedder,
    now: datetime | None = None,
) -> list[Proposal]:
    """One proposal round over the built-in catalog with the product's default thresholds."""
    return await propose(
        registry,
        store,
        Catalog.default(),
        embedder=embedder,
        config=ProposalConfig(
            cluster_threshold=DEFAULT_CLUSTER_THRESHOLD,
            coverage_threshold=DEFAULT_COVERAGE_THRESHOLD,
            min_runs=MIN_RUNS,
            max_runs=1000,
        ),
        now=now,
    )


async def test_propose_finds_the_uncovered_task_and_prices_it(
    store: TranscriptStore, embedder: MiniLMEmbedder, data_dir: Path
) -> None:
    museum_cost = await seed(store, data_dir)
    registry = RegistryStore(store.database)
    now = EPOCH + timedelta(days=3)
    proposals = await propose_with_defaults(registry, store, embedder, now=now)
    assert len(proposals) == 1, [(p.name, p.run_count) for p in proposals]
    proposal = proposals[0]
    assert proposal.status == "open" and proposal.run_count == 24
    assert set(proposal.name.split("_")) & {"museum", "hours", "open"}, proposal.name
    assert all(example in museum_hours_questions(24) for example in proposal.examples)
    assert proposal.name.replace("_", " ") in proposal.description
    assert proposal.lead_cost_usd == pytest.approx(museum_cost)
    assert proposal.window_days == pytest.approx(3.0)  # the oldest run is three days old
    assert proposal.monthly_savings_usd == pytest.approx(museum_cost * 30 / 3)
    assert proposal.nearest_specialist in Catalog.default().names
    assert proposal.nearest_score is not None
    assert proposal.nearest_score < DEFAULT_COVERAGE_THRESHOLD
    assert proposal.validator == "nonempty"
    assert proposal.max_tokens == 32  # room for the lead's short answers, and no more

    # Accepted, it is a specialist being trained: the next round does not propose it again.
    definition = await accept(registry, proposal.id)
    assert definition.name == proposal.name and definition.examples == proposal.examples
    assert definition.max_tokens == 32 and definition.proposal_id == proposal.id
    again = await propose_with_defaults(registry, store, embedder, now=now)
    assert again == []
    assert [p.status for p in await registry.list_proposals()] == ["accepted"]


async def test_too_few_runs_propose_nothing(
    store: TranscriptStore, embedder: MiniLMEmbedder
) -> None:
    for minute, question in enumerate(museum_hours_questions(MIN_RUNS - 1)):
        await store.save_run(lead_run(question, HOURS_ANSWER, minute=minute))
    proposals = await propose_with_defaults(RegistryStore(store.database), store, embedder)
    assert proposals == []


def test_only_the_leads_own_successful_work_counts() -> None:
    own = lead_run("What are your support hours?", HOURS_ANSWER, minute=2)
    delegated = delegated_run("What is 2+2?", "4", "math", minute=1)
    failure = Failure(FailureKind.lead_unavailable, "lead failed")
    failed = replace(lead_run("Hi", "x", minute=3), failure=failure)
    degraded = replace(lead_run("Hi", "x", minute=4), degraded=True)
    no_lead = replace(lead_run("Hi", "x", minute=5), lead_input_tokens=0, lead_output_tokens=0)
    call = FunctionCall(id="call_1", name="get_weather", arguments="{}")
    handed_over = replace(
        lead_run("Weather?", "Let me look that up.", minute=6),  # the text beside the call
        finish_reason="tool_calls",
        app_tool_calls=(call,),
    )
    tool_result: list[ChatMessage] = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    continued = replace(lead_run("Weather?", "Sunny.", minute=7), input_messages=tool_result)
    queries = lead_answered([degraded, failed, own, delegated, no_lead, handed_over, continued])
    assert [q.run_id for q in queries] == [own.run_id]
    assert queries[0].query == "What are your support hours?"


def test_clusters_are_average_linkage_groups_largest_first() -> None:
    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    near_a = np.array([0.95, 0.31, 0.0])
    vectors = np.stack([b, a, near_a, a, np.array([0.0, 0.0, 1.0])])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert cluster(vectors, 0.9) == [[1, 2, 3], [0], [4]]
    assert cluster(vectors, 0.2) == [[1, 2, 3], [0], [4]]  # b is 0.10 from the group on average
    assert cluster(vectors, 0.05) == [[0, 1, 2, 3], [4]]
    assert cluster(vectors[:1], 0.5) == [[0]] and cluster(vectors[:0], 0.5) == []
