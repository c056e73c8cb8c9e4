"""The difficulty skip: cascade sends a prompt straight to the lead when the specialist's attempt
would be escalated anyway.

:class:`DifficultyModel` scores P(escalated | prompt, specialist) from the prompt's embedding
(the vector the pre-router already computed), the cheap counts of
:mod:`orchestrator.difficulty_features` and which specialist the pre-router chose. It is fitted on
the product's own cascade transcripts (``distill/prerouter/difficulty.py``: escalated and the
lead's answer stood vs accepted) as PCA → standardisation → logistic regression, and saved
collapsed into the one linear map those three steps compose to, so a decision is one dot
product and numpy is all inference needs.

The cost/quality knob is a *target share of lead calls* in cascade (RouteLLM's
``router-mf-0.116`` names a threshold; we name what the operator is buying). With a skip
threshold ``t``, the lead answers the prompts scoring ``≥ t`` plus those below it that the
specialist escalates, so the lead's share is ``1 - P(score < t and accepted)``: it falls as ``t``
rises. :meth:`DifficultyModel.threshold_for` reads the lowest ``t`` meeting the target off that
curve, measured on held-out transcripts. A target below the share cascade escalates anyway
cannot be met by skipping: it means "never skip".
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.difficulty_features import text_features
from specialists.errors import ModelError

DIFFICULTY_FILE = "difficulty.json"
DIFFICULTY_WEIGHTS_FILE = "difficulty.npz"


@dataclass(frozen=True, eq=False)
class DifficultyModel:
    """A fitted escalation scorer and its lead-share curve."""

    specialists: tuple[str, ...]
    """The specialists it was fitted for, in the order of their indicator columns."""
    weights: np.ndarray = field(repr=False)
    """``(dim + len(TEXT_FEATURES) + len(specialists),)``: embedding, counts, indicators."""
    bias: float
    embedder: str
    """The embedder identity its embedding columns come from (as the pre-router model's)."""
    thresholds: tuple[float, ...]
    """Skip thresholds, ascending (``inf`` last: never skip)."""
    lead_shares: tuple[float, ...]
    """The share of cascade requests the lead answers at each threshold (non-increasing)."""
    auc: float
    """Its ranking quality on the held-out transcripts it was calibrated on."""

    def score(self, vector: np.ndarray, prompt: str, specialist: str) -> float | None:
        """P(escalated) of ``prompt`` with ``specialist``; ``None`` for a specialist it has not
        been fitted for (a new one is never skipped until the next retraining)."""
        if specialist not in self.specialists:
            return None
        indicator = np.zeros(len(self.specialists), dtype=np.float32)
        indicator[self.specialists.index(specialist)] = 1.0
        row = np.concatenate(
            [np.asarray(vector, np.float32), text_features([prompt])[0], indicator]
        )
        if row.shape != self.weights.shape:
            raise ModelError(
                f"the difficulty model expects {self.weights.shape[0]} features "
                f"({self.embedder}), got {row.shape[0]}"
            )
        logit = float(row @ self.weights) + self.bias
        return 1.0 / (1.0 + math.exp(-max(min(logit, 50.0), -50.0)))

    @property
    def base_lead_share(self) -> float:
        """The lead's share without skipping: what cascade escalates on its own."""
        return self.lead_shares[-1]

    def threshold_for(self, target_lead_share: float) -> float:
        """The lowest skip threshold whose lead share is at most the target (``inf``: never
        skip, when the target is below :attr:`base_lead_share`)."""
        # lead_shares is non-increasing: find the first index at or under the target.
        descending = [-share for share in self.lead_shares]
        index = bisect.bisect_left(descending, -target_lead_share)
        return self.thresholds[min(index, len(self.thresholds) - 1)]

    def content_hash(self) -> str:
        digest = hashlib.sha256()
        meta = [self.specialists, self.bias, self.embedder, self.thresholds, self.lead_shares]
        digest.update(json.dumps(meta).encode())
        digest.update(np.ascontiguousarray(self.weights, dtype=np.float32).tobytes())
        return digest.hexdigest()[:16]

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / DIFFICULTY_WEIGHTS_FILE, weights=self.weights.astype(np.float32))
        meta = {
            "specialists": list(self.specialists),
            "bias": self.bias,
            "embedder": self.embedder,
            "thresholds": [None if math.isinf(t) else t for t in self.thresholds],  # no inf in JSON
            "lead_shares": list(self.lead_shares),
            "auc": self.auc,
            "hash": self.content_hash(),
        }
        (directory / DIFFICULTY_FILE).write_text(json.dumps(meta, indent=2) + "\n", "utf-8")

    @classmethod
    def load(cls, directory: Path, *, expected_hash: str) -> DifficultyModel:
        """Read a model :meth:`save` wrote.

        Raises:
            ModelError: It is missing, unreadable, or does not hash to ``expected_hash``.
        """
        try:
            meta = json.loads((directory / DIFFICULTY_FILE).read_text(encoding="utf-8"))
            with np.load(directory / DIFFICULTY_WEIGHTS_FILE) as archive:
                weights = archive["weights"]
            model = cls(
                specialists=tuple(meta["specialists"]),
                weights=weights,
                bias=float(meta["bias"]),
                embedder=str(meta["embedder"]),
                thresholds=tuple(math.inf if t is None else float(t) for t in meta["thresholds"]),
                lead_shares=tuple(float(s) for s in meta["lead_shares"]),
                auc=float(meta["auc"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"cannot read the difficulty model in {directory}: {exc}") from exc
        if model.content_hash() != expected_hash:
            raise ModelError(
                f"the difficulty model in {directory} hashes to {model.content_hash()}, "
                f"registered as {expected_hash}: the files changed. Fix: retrain "
                "('understudy router train') or roll back ('understudy router rollback')"
            )
        return model


def lead_share_curve(
    scores: Sequence[float], escalated: Sequence[bool]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(thresholds ascending ending in ``inf``, the lead's share at each) on labelled runs.

    At threshold ``t`` the lead answers every run scoring ``≥ t`` and every other escalated
    one: ``1 - (accepted runs scoring below t) / n``.
    """
    if not scores:
        raise ValueError("a lead-share curve needs at least one labelled run")
    order = np.argsort(scores, kind="stable")
    ranked = np.asarray(scores, dtype=float)[order]
    accepted = ~np.asarray(escalated, dtype=bool)[order]
    below = np.concatenate([[0], np.cumsum(accepted)])  # accepted among the i lowest
    thresholds, shares = [], []
    for i, value in enumerate(ranked):
        if i and value == ranked[i - 1]:
            continue  # a threshold between equal scores does not exist
        thresholds.append(float(value))
        shares.append(float(1.0 - below[i] / len(ranked)))
    thresholds.append(math.inf)
    shares.append(float(1.0 - below[-1] / len(ranked)))
    return tuple(thresholds), tuple(shares)


@dataclass(frozen=True, slots=True)
class DifficultyDecision:
    """What the difficulty skip decided for one cascade run (the reply's and transcript's
    ``difficulty``)."""

    target_lead_share: float
    score: float | None
    """P(escalated) for the chosen specialist; ``None`` when it could not be scored."""
    threshold: float | None
    """The skip threshold the target maps to; ``None`` when nothing is skipped at any score
    (no model, or a target below what cascade escalates anyway)."""
    skipped: bool
    reason: str
    """Why it skipped or not, in words (no model, specialist not fitted, score vs threshold)."""
    model_version: int | None = None

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DifficultyDecision:
        """The decision :meth:`as_dict` wrote (a transcript's)."""
        return cls(
            target_lead_share=float(values["target_lead_share"]),
            score=values["score"],
            threshold=values["threshold"],
            skipped=bool(values["skipped"]),
            reason=str(values["reason"]),
            model_version=values["model_version"],
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "target_lead_share": self.target_lead_share,
            "score": self.score,
            "threshold": self.threshold,
            "skipped": self.skipped,
            "reason": self.reason,
            "model_version": self.model_version,
        }


def skip_decision(
    model: DifficultyModel | None,
    score: float | None,
    specialist: str,
    target: float,
    *,
    version: int | None,
) -> DifficultyDecision:
    """Whether cascade skips ``specialist`` (the pre-router's choice, ``score`` its prompt's
    P(escalated)) for a target share of lead calls; every case says why in
    :attr:`DifficultyDecision.reason`."""
    if model is None:
        reason = (
            "no difficulty model: the active pre-router has none (it is fitted on cascade "
            "transcripts by 'understudy router train')"
        )
        return DifficultyDecision(target, None, None, False, reason, version)
    threshold = model.threshold_for(target)
    if math.isinf(threshold):
        reason = (
            f"target {target:.2f} is below the {model.base_lead_share:.2f} that cascade "
            "escalates anyway: never skip"
        )
        return DifficultyDecision(target, score, None, False, reason, version)
    if score is None:
        reason = f"the difficulty model was not fitted for {specialist!r} yet"
        return DifficultyDecision(target, None, threshold, False, reason, version)
    skipped = score >= threshold
    relation = "≥" if skipped else "<"
    reason = f"P(escalated) {score:.3f} {relation} threshold {threshold:.3f}"
    return DifficultyDecision(target, score, threshold, skipped, reason, version)
