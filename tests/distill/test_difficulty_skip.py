"""Cascade's difficulty skip, fitted on the product's own cascade transcripts (real MiniLM, real
database, real SmolLM2 specialist; only the paid lead is scripted): the kind of request the
specialist kept failing goes straight to the lead for a target share of lead calls, the kind it
answered is still tried, and the transcript says what was decided."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from distill.prerouter.difficulty import (
    MIN_AUC,
    CascadeOutcome,
    cascade_outcomes,
    collapse,
    fit_difficulty,
    outcome_of,
)
from distill.prerouter.labels import recent_runs
from distill.prerouter.seed import catalog_examples
from distill.prerouter.training import train_and_register
from distill.prerouter.versions import RouterVersions
from evals.router_eval.difficulty import difficulty_pipeline
from orchestrator.lead import LeadConfig
from orchestrator.options import CallOptions
from orchestrator.outcome import Failure, FailureKind
from orchestrator.prerouter import MiniLMEmbedder
from orchestrator.prerouter_learned import LearnedPreRouter
from orchestrator.run import Orchestrator
from orchestrator.testing import ScriptedLead, reply
from orchestrator.transcripts import TranscriptStore
from specialists.catalog import Catalog
from specialists.local import LocalBackend
from tests.helpers.routing_prompts import base_examples
from tests.helpers.stores import open_store
from tests.orchestrator.test_transcripts import T0, make_run

SHORT = {"generation": {"max_tokens": 8}}


def easy(rng: random.Random) -> str:
    return f"What is {rng.randint(2, 99)} plus {rng.randint(2, 99)}?"


def hard(rng: random.Random) -> str:
    a, b, c, d, e, f = (rng.randint(3, 90) for _ in range(6))
    return (
        f"A farmer has {a} cows. Each cow gives {b} liters of milk per day, and he sells {c}% "
        f"of it at ${d}.{e} per liter. Half of the rest goes to his {f} neighbours equally. "
        f"How many dollars does he earn in {e} weeks, and how many liters does each neighbour "
        "get per week?"
    )


def test_the_collapsed_weights_score_as_the_fitted_pipeline() -> None:
    """Serving's one dot product is the pipeline's PCA → scaler → logistic regression."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 43))
    labels = features[:, 0] + features[:, 41] + rng.normal(scale=0.5, size=200) > 0
    pipeline = difficulty_pipeline(40, components=8, regularization=0.5).fit(features, labels)
    weights, bias = collapse(pipeline)
    mine = 1 / (1 + np.exp(-(features @ weights + bias)))
    np.testing.assert_allclose(mine, pipeline.predict_proba(features)[:, 1], atol=1e-9)


def test_only_cascade_attempts_whose_outcome_stood_are_labels() -> None:
    accepted = make_run(route="cascade:accepted:math", escalated=False)
    assert outcome_of(accepted) == CascadeOutcome("Combien font 17 × 23 ? 🤔", "math", False)
    assert outcome_of(make_run()) == CascadeOutcome("Combien font 17 × 23 ? 🤔", "math", True)
    failed = Failure(FailureKind.lead_unavailable, "down")
    for teaches_nothing in (
        make_run(degraded=True),  # the lead's answer did not stand
        make_run(failure=failed),
        make_run(route="cascade:lead"),
        make_run(route="cascade:skipped:math"),
        make_run(mode="router", route="router"),
    ):
        assert outcome_of(teaches_nothing) is None, teaches_nothing.route


def test_too_few_outcomes_fit_no_model_and_say_so() -> None:
    fit = fit_difficulty(
        [CascadeOutcome(f"q{i}", "math", i % 2 == 0) for i in range(30)],
        MiniLMEmbedder(),
        embedder_id="minilm:test",
    )
    assert fit.model is None and not fit.gate["passed"]
    assert "too few cascade outcomes" in fit.gate["reason"]


@pytest.fixture(scope="module")
async def smollm2(smollm2_dir: Path) -> AsyncIterator[LocalBackend]:
    backend = LocalBackend(smollm2_dir, base_ref="smollm2-135m")
    yield backend
    await backend.aclose()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[TranscriptStore]:
    opened = await open_store(TranscriptStore, database_url)
    yield opened
    await opened.database.close()


async def test_cascade_skips_the_kind_its_specialist_keeps_failing(
    smollm2: LocalBackend, store: TranscriptStore, tmp_path: Path
) -> None:
    rng = random.Random(7)
    served = Catalog.default().with_overrides({n: SHORT for n in ("math", "code", "email")})
    # Yesterday's cascade traffic: the math specialist answered the sums and escalated the
    # word problems.
    for i in range(60):
        for prompt, route in ((easy(rng), "accepted"), (hard(rng), "escalated")):
            await store.save_run(
                make_run(
                    input_messages=[{"role": "user", "content": prompt}],
                    route=f"cascade:{route}:math",
                    escalated=route == "escalated",
                    created_at=T0 - timedelta(minutes=i),
                )
            )
    outcomes = cascade_outcomes(await recent_runs(store, max_runs=1000), served.names)
    assert len(outcomes) == 120

    embedder, versions = MiniLMEmbedder(), RouterVersions(tmp_path)
    trained = train_and_register(
        [*base_examples(), *catalog_examples(served)],
        [],
        catalog=served,
        embedder=embedder,
        versions=versions,
        promote=True,
        outcomes=outcomes,
    )
    gate = trained.difficulty.gate
    assert trained.difficulty.model is not None and gate["auc"] >= MIN_AUC, gate
    entry = versions.active()
    assert entry is not None and entry.difficulty_labels == 120
    loaded = versions.load_difficulty(entry)
    assert loaded is not None and loaded.content_hash() == trained.difficulty.model.content_hash()
    router = LearnedPreRouter(
        served,
        embedder,
        versions.load(entry),
        version=entry.version,
        difficulty=versions.load_difficulty(entry),
    )

    word_problem, sum_ = hard(random.Random(99)), easy(random.Random(99))
    with ScriptedLead([reply("The lead's answer.")], repeat_last=True) as lead:
        config = LeadConfig(
            model="gpt-4o-mini", base_url=lead.base_url, api_key="sk-test", max_retries=0
        )
        orchestrator = Orchestrator(
            catalog=served, backend=smollm2, lead=config, store=store, prerouter=router
        )
        half = CallOptions(lead_share=0.6)
        skipped = await orchestrator.run(word_problem, "cascade", options=half)
        tried = await orchestrator.run(sum_, "cascade", options=half)
        never = await orchestrator.run(word_problem, "cascade", options=CallOptions(lead_share=0.2))
        plain = await orchestrator.run(word_problem, "cascade")

    assert skipped.route == "cascade:skipped:math" and skipped.specialists == []
    assert skipped.answer == "The lead's answer." and not skipped.escalated
    decision = skipped.difficulty
    assert decision is not None and decision.skipped and decision.model_version == entry.version
    assert decision.score is not None and decision.threshold is not None
    assert decision.score >= decision.threshold
    assert (await store.get_run(skipped.run_id)).difficulty == decision

    assert tried.route.startswith(("cascade:accepted:math", "cascade:escalated:math"))
    assert tried.difficulty is not None and not tried.difficulty.skipped
    # A target below what cascade escalates anyway (half of these runs) never skips.
    assert never.difficulty is not None and not never.difficulty.skipped
    assert "escalates anyway" in never.difficulty.reason
    assert never.specialists[:1] == ["math"]
    # No target, no server default: the plain cascade, nothing recorded.
    assert plain.difficulty is None and plain.specialists[:1] == ["math"]
