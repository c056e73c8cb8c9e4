"""``understudy router list|promote|rollback`` through the real CLI, on registered versions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from distill.prerouter.versions import RouterVersions
from orchestrator.prerouter_model import NONE, RouterModel
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
