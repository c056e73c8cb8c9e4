"""Cascade's difficulty skip as the orchestrator applies it: the lead-share curve, the threshold a
target maps to, why each decision was taken, and the model's files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from orchestrator.difficulty import (
    DifficultyDecision,
    DifficultyModel,
    lead_share_curve,
    skip_decision,
)
from orchestrator.difficulty_features import TEXT_FEATURES
from specialists.errors import ModelError

# Six held-out cascade runs by score: accepted ones low, escalated ones mostly high.
SCORES = [0.1, 0.2, 0.3, 0.6, 0.7, 0.9]
ESCALATED = [False, False, True, False, True, True]


def model(dim: int = 4) -> DifficultyModel:
    thresholds, shares = lead_share_curve(SCORES, ESCALATED)
    return DifficultyModel(
        specialists=("code", "math"),
        weights=np.arange(dim + len(TEXT_FEATURES) + 2, dtype=np.float32) / 100,
        bias=-1.0,
        embedder="custom:test",
        thresholds=thresholds,
        lead_shares=shares,
        auc=0.8,
    )


def test_the_lead_share_falls_as_the_skip_threshold_rises() -> None:
    thresholds, shares = lead_share_curve(SCORES, ESCALATED)
    assert thresholds == (0.1, 0.2, 0.3, 0.6, 0.7, 0.9, math.inf)
    # At t the lead answers what scores ≥ t and what escalates below it: 1 - accepted below / 6.
    assert shares == pytest.approx((1.0, 5 / 6, 4 / 6, 4 / 6, 3 / 6, 3 / 6, 3 / 6))
    assert model().base_lead_share == pytest.approx(0.5)  # what cascade escalates anyway


def test_equal_scores_give_no_threshold_between_them() -> None:
    thresholds, shares = lead_share_curve([0.5, 0.5, 0.8], [False, True, True])
    assert thresholds == (0.5, 0.8, math.inf)
    assert shares == pytest.approx((1.0, 2 / 3, 2 / 3))  # the tied accepted run is below 0.8


@pytest.mark.parametrize(
    ("target", "threshold"),
    [(1.0, 0.1), (0.9, 0.2), (0.7, 0.3), (0.6, 0.7), (0.5, 0.7), (0.4, math.inf), (0.0, math.inf)],
)
def test_a_target_maps_to_the_lowest_threshold_that_meets_it(
    target: float, threshold: float
) -> None:
    assert model().threshold_for(target) == threshold


def test_every_skip_decision_says_why() -> None:
    fitted = model()
    skipped = skip_decision(fitted, 0.8, "math", 0.6, version=3)
    assert (skipped.skipped, skipped.threshold, skipped.model_version) == (True, 0.7, 3)
    assert skipped.reason == "P(escalated) 0.800 ≥ threshold 0.700"
    kept = skip_decision(fitted, 0.65, "math", 0.6, version=3)
    assert not kept.skipped and "0.650 < threshold 0.700" in kept.reason
    never = skip_decision(fitted, 0.99, "math", 0.2, version=3)
    assert not never.skipped and never.threshold is None
    assert "below the 0.50 that cascade escalates anyway" in never.reason
    unfitted = skip_decision(fitted, None, "email", 0.6, version=3)
    assert not unfitted.skipped and "not fitted for 'email'" in unfitted.reason
    missing = skip_decision(None, 0.99, "math", 0.6, version=None)
    assert not missing.skipped and missing.threshold is None
    assert "no difficulty model" in missing.reason


def test_a_decision_round_trips_through_its_json() -> None:
    for original in (
        skip_decision(model(), 0.8, "math", 0.6, version=3),
        skip_decision(None, 0.8, "math", 0.6, version=None),
    ):
        assert DifficultyDecision.from_dict(original.as_dict()) == original


def test_the_model_scores_only_specialists_it_was_fitted_for() -> None:
    fitted = model()
    vector = np.ones(4, dtype=np.float32)
    math_score = fitted.score(vector, "What is 2 + 2?", "math")
    code_score = fitted.score(vector, "What is 2 + 2?", "code")
    assert math_score is not None and code_score is not None and 0 < math_score < 1
    assert math_score != code_score  # the specialist's indicator column counts
    assert fitted.score(vector, "What is 2 + 2?", "email") is None
    with pytest.raises(ModelError, match="expects"):
        fitted.score(np.ones(5, dtype=np.float32), "x", "math")


def test_saved_model_loads_whole_and_refuses_changed_files(tmp_path: Path) -> None:
    fitted = model()
    fitted.save(tmp_path)
    loaded = DifficultyModel.load(tmp_path, expected_hash=fitted.content_hash())
    assert loaded.thresholds == fitted.thresholds  # inf survives JSON as null
    assert loaded.content_hash() == fitted.content_hash()
    np.testing.assert_array_equal(loaded.weights, fitted.weights)
    with pytest.raises(ModelError, match="the files changed"):
        DifficultyModel.load(tmp_path, expected_hash="0" * 16)
    (tmp_path / "difficulty.json").write_text("{", encoding="utf-8")
    with pytest.raises(ModelError, match="cannot read"):
        DifficultyModel.load(tmp_path, expected_hash=fitted.content_hash())
