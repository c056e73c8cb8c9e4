"""The two-stage pre-router: the static embedding's classifier decides where it is sure, MiniLM's
the rest, and the cut between them is chosen so the mix keeps MiniLM's accuracy and precision
(real MiniLM, the real static table, the shared data's seed examples)."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest

from distill.prerouter.seed import Labelled, seed_examples
from distill.prerouter.training import choose_cut, train_and_register
from distill.prerouter.versions import FAST_DIR, RouterVersions
from evals.data import DataSource
from evals.scorers.routing import routing_figures
from evals.suites.routing import labelled_samples
from orchestrator.difficulty import DifficultyModel
from orchestrator.difficulty_features import TEXT_FEATURES
from orchestrator.prerouter import MiniLMEmbedder, embed_prompts
from orchestrator.prerouter_learned import LearnedPreRouter, embedder_identity
from orchestrator.prerouter_model import NONE, RouterModel, fit_router_model
from orchestrator.prerouter_static import StaticEmbedder
from orchestrator.prerouter_two_stage import TwoStagePreRouter
from specialists.catalog import Catalog
from specialists.errors import ModelError

PER_CLASS = 80
PER_DOMAIN = 30


def sample(data_dir: Path) -> tuple[list[Labelled], list[str], list[str]]:
    """Seed examples (PER_CLASS of each label) and held-out routing-suite prompts, labels."""
    source = DataSource(data_dir)
    rng = random.Random(0)
    by_label: dict[str, list[Labelled]] = {}
    for example in seed_examples(source, Catalog.default()):
        by_label.setdefault(example.label, []).append(example)
    train = [
        e for items in by_label.values() for e in rng.sample(items, min(PER_CLASS, len(items)))
    ]
    samples = labelled_samples(source, PER_DOMAIN)
    return train, [s.prompt for s in samples], [s.reference for s in samples]


def model(classes: tuple[str, ...]) -> RouterModel:
    return RouterModel(
        classes=classes,
        coef=np.zeros((len(classes), 2), dtype=np.float32),
        intercept=np.zeros(len(classes), dtype=np.float32),
        thresholds={name: 0.0 for name in classes if name != NONE},
        embedder="custom:test",
    )


def test_the_cut_is_the_lowest_that_keeps_the_precise_routers_figures() -> None:
    classes = (NONE, "math")
    labels = [NONE, "math", "math", NONE]
    # The precise router is right on all four; the fast one is wrong on the second, where it
    # is least sure (0.6), and right where it is sure.
    precise = np.array([[0.9, 0.1], [0.1, 0.9], [0.1, 0.9], [0.9, 0.1]])
    fast = np.array([[0.95, 0.05], [0.6, 0.4], [0.2, 0.8], [0.7, 0.3]])
    assert choose_cut(model(classes), fast, model(classes), precise, labels) == 0.61
    always_wrong = np.array([[0.1, 0.9], [0.9, 0.1], [0.9, 0.1], [0.1, 0.9]])
    assert choose_cut(model(classes), always_wrong, model(classes), precise, labels) is None


def test_sure_prompts_go_the_fast_way_and_the_rest_to_minilm(
    static_dir: Path, data_dir: Path
) -> None:
    train, prompts, _ = sample(data_dir)
    catalog = Catalog.default()

    def learned(embedder: StaticEmbedder | MiniLMEmbedder) -> LearnedPreRouter:
        vectors = embed_prompts(embedder, [e.prompt for e in train])
        fitted, _ = fit_router_model(
            vectors, [e.label for e in train], embedder=embedder_identity(embedder)
        )
        return LearnedPreRouter(catalog, embedder, fitted, version=7)

    fast, precise = learned(StaticEmbedder(static_dir)), learned(MiniLMEmbedder())
    both = TwoStagePreRouter(fast, precise, cut=0.8)
    top = fast.model.probabilities(embed_prompts(fast.embedder, prompts)).max(axis=1)
    expected = [
        f if sure else p
        for f, p, sure in zip(
            fast.route_many(prompts), precise.route_many(prompts), top >= 0.8, strict=True
        )
    ]
    assert both.route_many(prompts) == expected
    assert 0 < (top >= 0.8).sum() < len(prompts)  # both stages decided some
    assert both.version == 7 and both.for_catalog(catalog).cut == 0.8
    assert TwoStagePreRouter(fast, precise, cut=1.01).route_many(prompts) == precise.route_many(
        prompts
    )


def test_a_two_stage_version_keeps_minilms_accuracy_and_loads_as_it_was_trained(
    static_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    train, prompts, labels = sample(data_dir)
    catalog, minilm, static = Catalog.default(), MiniLMEmbedder(), StaticEmbedder(static_dir)
    versions = RouterVersions(tmp_path)
    alone = train_and_register(
        train, [], catalog=catalog, embedder=minilm, versions=versions, promote=False
    )
    two = train_and_register(
        train,
        [],
        catalog=catalog,
        embedder=minilm,
        versions=versions,
        promote=False,
        fast_embedder=static,
    )
    entry = two.version
    assert entry.cut is not None and entry.fast_embedder == embedder_identity(static)
    assert alone.version.cut is None and alone.version.fast_hash is None
    router = versions.router(entry, catalog, minilm, fast_embedder=static)
    assert isinstance(router, TwoStagePreRouter) and router.cut == entry.cut
    # Without the static table at hand, the version is served by MiniLM alone.
    assert isinstance(versions.router(entry, catalog, minilm), LearnedPreRouter)

    precise = versions.router(alone.version, catalog, minilm)
    mine = routing_figures(labels, [d.specialist or NONE for d in router.route_many(prompts)])
    theirs = routing_figures(labels, [d.specialist or NONE for d in precise.route_many(prompts)])
    # 120 held-out prompts after training on 320: one prompt is 0.03 of a class's precision.
    assert mine.accuracy >= theirs.accuracy - 0.02, (mine, theirs)
    assert mine.min_precision >= theirs.min_precision - 0.05, (mine, theirs)

    (tmp_path / entry.directory_name / FAST_DIR / "model.json").write_text("{}", "utf-8")
    with pytest.raises(ModelError):
        versions.router(entry, catalog, minilm, fast_embedder=static)


def test_a_fast_decision_is_scored_for_the_difficulty_skip_only_when_asked(
    static_dir: Path, data_dir: Path
) -> None:
    """Routing never pays a MiniLM pass for the difficulty model; ``difficulty_of`` does, and
    scores as MiniLM's own router would have."""
    train, prompts, _ = sample(data_dir)
    catalog, minilm, static = Catalog.default(), MiniLMEmbedder(), StaticEmbedder(static_dir)

    def learned(embedder: StaticEmbedder | MiniLMEmbedder) -> RouterModel:
        vectors = embed_prompts(embedder, [e.prompt for e in train])
        fitted, _ = fit_router_model(
            vectors, [e.label for e in train], embedder=embedder_identity(embedder)
        )
        return fitted

    dim = embed_prompts(minilm, ["x"]).shape[1]
    difficulty = DifficultyModel(
        specialists=("code", "email", "math"),
        weights=np.linspace(-1, 1, dim + len(TEXT_FEATURES) + 3, dtype=np.float32),
        bias=0.0,
        embedder=embedder_identity(minilm),
        thresholds=(0.5, math.inf),
        lead_shares=(0.6, 0.4),
        auc=0.7,
    )
    precise = LearnedPreRouter(catalog, minilm, learned(minilm), version=1, difficulty=difficulty)
    fast = LearnedPreRouter(catalog, static, learned(static), version=1)
    both = TwoStagePreRouter(fast, precise, cut=0.5)
    decided = both.route_many(prompts)
    by_fast = [(p, d) for p, d in zip(prompts, decided, strict=True) if d.difficulty is None]
    assert by_fast, "the static stage decided some prompts, unscored"
    prompt, decision = by_fast[0]
    expected = precise.route_many([prompt])[0].difficulty
    assert expected is not None and both.difficulty_of(prompt, decision) == pytest.approx(expected)
