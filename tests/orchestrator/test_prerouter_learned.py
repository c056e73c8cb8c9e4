"""The learned pre-router: real MiniLM embeddings, real scikit-learn fits, on small data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from distill.prerouter.training import train_and_register
from distill.prerouter.versions import RouterVersionError, RouterVersions
from evals.scorers.routing import routing_figures
from orchestrator.prerouter import MiniLMEmbedder
from orchestrator.prerouter_learned import LearnedPreRouter
from orchestrator.prerouter_model import (
    FALLBACK_THRESHOLD,
    NONE,
    RouterModel,
    precision_thresholds,
)
from specialists.catalog import Catalog
from specialists.errors import ModelError
from tests.helpers.routing_prompts import (
    CODE,
    EMAIL,
    MATH,
    NONE_PROMPTS,
    TRANSLATE,
    base_examples,
    labelled,
)


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    embedder = MiniLMEmbedder()
    embedder.embed(["warm up"])
    return embedder


def test_thresholds_keep_each_specialist_precise_out_of_fold() -> None:
    classes = (NONE, "a")
    labels = ["a", "a", NONE, "a", NONE]
    # p(a) out of fold: the two highest are right, the third (0.7) is a "none" prompt.
    probabilities = np.array([[0.1, 0.9], [0.2, 0.8], [0.3, 0.7], [0.4, 0.6], [0.9, 0.1]])
    assert precision_thresholds(classes, labels, probabilities) == {"a": 0.8}
    never = np.array([[0.1, 0.9], [0.9, 0.1], [0.2, 0.8], [0.9, 0.1], [0.3, 0.7]])
    never_labels = [NONE, NONE, "a", NONE, "a"]
    assert precision_thresholds(classes, never_labels, never) == {"a": FALLBACK_THRESHOLD}


def test_a_prompt_far_from_every_specialist_goes_to_the_lead(
    minilm: MiniLMEmbedder, tmp_path: Path
) -> None:
    outcome = train_and_register(
        base_examples(),
        labelled(["Write a python function that sorts a dict by value."], "code"),
        catalog=Catalog.default(),
        embedder=minilm,
        versions=RouterVersions(tmp_path),
        promote=False,
    )
    router = LearnedPreRouter(Catalog.default(), minilm, outcome.model, version=1)
    far = router.route_many(
        ["Compose a limerick about a sleepy owl.", "What is the capital of Mongolia?"]
    )
    assert [d.specialist for d in far] == [None, None], [d.scores for d in far]
    near = router.route("Write a Python function that checks whether a string is a palindrome.")
    assert near.specialist == "code" and near.scores["code"] >= near.threshold


def test_the_gate_refuses_a_worse_model_and_keeps_the_active_one(
    minilm: MiniLMEmbedder, tmp_path: Path
) -> None:
    versions = RouterVersions(tmp_path)
    held_out = [
        *labelled(["Calculate 7% of 350.", "Solve 2x + 5 = 17."], "math"),
        *labelled(["Write a Python class for a stack.", "How do I sort a list in Go?"], "code"),
        *labelled(["Draft an email to my team about Monday's meeting."], "email"),
        *labelled(["Write a haiku about snow.", "Who painted the Mona Lisa?"], NONE),
    ]
    good = train_and_register(
        base_examples(),
        held_out,
        catalog=Catalog.default(),
        embedder=minilm,
        versions=versions,
        promote=True,
    )
    assert good.promoted and versions.active() == good.version
    # Labels scrambled: math and email prompts swapped, code called none.
    scrambled = [
        *labelled(MATH, "email"),
        *labelled(EMAIL, "math"),
        *labelled(CODE, NONE),
        *labelled(NONE_PROMPTS, "code"),
    ]
    worse = train_and_register(
        scrambled,
        held_out,
        catalog=Catalog.default(),
        embedder=minilm,
        versions=versions,
        promote=True,
    )
    assert not worse.gate.passed and not worse.promoted
    assert worse.gate.active is not None
    assert worse.gate.candidate.accuracy < worse.gate.active.accuracy
    assert versions.active() == good.version
    assert [v.status for v in versions.list()] == ["active", "candidate"]


def test_rollback_restores_the_previous_version(minilm: MiniLMEmbedder, tmp_path: Path) -> None:
    versions = RouterVersions(tmp_path)
    first = train_and_register(
        base_examples(),
        [],
        catalog=Catalog.default(),
        embedder=minilm,
        versions=versions,
        promote=False,
    ).version
    second = train_and_register(
        [*base_examples(), *labelled(TRANSLATE, NONE)],
        [],
        catalog=Catalog.default(),
        embedder=minilm,
        versions=versions,
        promote=False,
    ).version
    with pytest.raises(RouterVersionError, match="nothing to roll back to"):
        versions.rollback()
    versions.promote(first.version)
    versions.promote(second.version)
    assert versions.active() is not None and versions.active().version == second.version  # type: ignore[union-attr]
    restored = versions.rollback()
    assert restored.version == first.version and versions.active() == restored
    assert versions.load(restored).content_hash() == first.hash
    assert {v.version: v.status for v in versions.list()} == {1: "active", 2: "retired"}


def test_a_changed_model_file_is_refused(minilm: MiniLMEmbedder, tmp_path: Path) -> None:
    versions = RouterVersions(tmp_path)
    entry = train_and_register(
        base_examples(),
        [],
        catalog=Catalog.default(),
        embedder=minilm,
        versions=versions,
        promote=True,
    ).version
    model = versions.load(entry)
    tampered = RouterModel(
        model.classes, model.coef * 2, model.intercept, model.thresholds, model.embedder
    )
    tampered.save(tmp_path / entry.directory_name)
    with pytest.raises(ModelError, match="registered as"):
        versions.load(entry)


def test_routing_figures_give_precision_recall_and_confusion() -> None:
    figures = routing_figures(
        ["math", "math", "code", NONE, NONE], ["math", NONE, "math", NONE, "code"]
    )
    assert figures.classes == ("code", "math", NONE)
    assert figures.accuracy == pytest.approx(2 / 5)
    assert figures.precision == {"code": 0.0, "math": 0.5}
    assert figures.recall == {"code": 0.0, "math": 0.5, NONE: 0.5}
    assert figures.confusion["math"] == {"code": 0, "math": 1, NONE: 1}
    assert figures.min_precision == 0.0
    assert any("precision" in line for line in figures.lines())
