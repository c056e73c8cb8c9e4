"""``understudy router list|promote|rollback`` through the real CLI, on registered versions, and
the serving side's choice of the active version."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from distill.prerouter.versions import RouterVersions
from distill.reconcile import prerouter_like
from orchestrator.prerouter import MiniLMEmbedder, PreRouter
from orchestrator.prerouter_learned import LearnedPreRouter, embedder_identity
from orchestrator.prerouter_model import NONE, RouterModel
from orchestrator.prerouter_static import STATIC_DIR, StaticEmbedder
from orchestrator.prerouter_two_stage import TwoStagePreRouter
from serving.runtime import build_prerouter
from serving.settings import get_settings
from specialists.catalog import Catalog
from tests.helpers.cli import understudy


def model(bias: float) -> RouterModel:
    """A two-class model; ``bias`` makes each one's content (and hash) its own."""
    return RouterModel(
        classes=(NONE, "math"),
        coef=np.eye(2, 3, dtype=np.float32),
        intercept=np.array([0.0, bias], dtype=np.float32),
        thresholds={"math": 0.9},
        embedder="static:test",
    )


def listed() -> dict[int, str]:
    result = understudy("router", "list", "--json")
    assert result.returncode == 0, result.stderr
    return {entry["version"]: entry["status"] for entry in json.loads(result.stdout)}


def test_promote_and_rollback_move_the_active_version(isolated_env: Path) -> None:
    versions = RouterVersions(isolated_env / "prerouter")
    for bias in (0.1, 0.2):
        versions.add(model(bias), transcript_labels=0, gate={"passed": True})
    assert listed() == {1: "candidate", 2: "candidate"}

    refused = understudy("router", "rollback")
    assert refused.returncode != 0 and "nothing to roll back to" in refused.stderr

    for version in ("1", "2"):
        assert understudy("router", "promote", version).returncode == 0
    assert listed() == {1: "retired", 2: "active"}

    rolled = understudy("router", "rollback")
    assert rolled.returncode == 0 and "v1" in rolled.stdout
    assert listed() == {1: "active", 2: "retired"}
    assert versions.load(versions.get(1)).content_hash() == model(0.1).content_hash()

    missing = understudy("router", "promote", "7")
    assert missing.returncode != 0 and "no pre-router version 7" in missing.stderr


def test_serving_routes_with_the_active_version_and_follows_catalog_swaps(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = get_settings()
    assert type(build_prerouter(settings)) is PreRouter  # nothing trained: the prototypes
    identity = embedder_identity(MiniLMEmbedder(settings.router.embedding_model))
    trained = replace(model(0.3), embedder=identity)
    versions = RouterVersions(isolated_env / "prerouter")
    versions.promote(versions.add(trained, transcript_labels=0, gate={}).version)

    router = build_prerouter(settings)
    assert isinstance(router, LearnedPreRouter) and router.version == 1
    assert router.model.content_hash() == trained.content_hash()
    swapped = prerouter_like(router)(Catalog.default())
    assert isinstance(swapped, LearnedPreRouter) and swapped.model is router.model

    monkeypatch.setenv("UNDERSTUDY_ROUTER_LEARNED", "false")
    get_settings.cache_clear()
    assert type(build_prerouter(get_settings())) is PreRouter


def test_a_two_stage_version_is_served_behind_the_static_table(
    isolated_env: Path, static_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = get_settings()
    versions = RouterVersions(settings.prerouter_dir)
    minilm = embedder_identity(MiniLMEmbedder(settings.router.embedding_model))
    static = embedder_identity(StaticEmbedder(static_dir))
    entry = versions.add(
        replace(model(0.3), embedder=minilm),
        transcript_labels=0,
        gate={},
        fast=replace(model(0.4), embedder=static),
        cut=0.9,
    )
    versions.promote(entry.version)
    listed_versions = json.loads(understudy("router", "list", "--json").stdout)
    assert listed_versions[0]["two_stage_cut"] == 0.9
    # Until the static table is distilled here, MiniLM alone serves the version.
    assert isinstance(build_prerouter(settings), LearnedPreRouter)
    assert "static embedding is missing here" in caplog.text
    shutil.copytree(static_dir, settings.prerouter_dir / STATIC_DIR)
    router = build_prerouter(settings)
    assert isinstance(router, TwoStagePreRouter) and router.cut == 0.9 and router.version == 1
    swapped = prerouter_like(router)(Catalog.default())
    assert isinstance(swapped, TwoStagePreRouter) and swapped.fast.model is router.fast.model
