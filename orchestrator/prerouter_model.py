"""The learned pre-router: a linear classifier over the prompt embedding, with a "none" class.

The prototype router (:class:`~orchestrator.prerouter.PreRouter`) can only compare a prompt with a
specialist's description and three examples; on real user requests that was not enough (0.467
accuracy on held-out chat prompts, creative writing sent to the email specialist). A classifier
trained on real requests of every kind — and on the lead's own delegations, read from the
transcripts (``distill/prerouter/``) — learns where the boundaries are.

Decision rule: the most probable *specialist* answers only when its probability reaches that
specialist's threshold and beats "none"'s; otherwise the prompt goes to the lead ("none"). Each
threshold is the lowest one at which the specialist's precision on out-of-fold predictions is at
least :data:`TARGET_PRECISION`, because a confident wrong specialist is what cascade accepts,
while a prompt wrongly kept by the lead only costs a lead call.

Inference is numpy only (a matrix product and a softmax over the saved weights); fitting uses
scikit-learn's logistic regression, imported by :func:`fit_router_model` alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from specialists.errors import ConfigurationError, ModelError

NONE = "none"
"""The class of prompts the lead keeps."""

TARGET_PRECISION = 0.95
"""Each specialist's threshold is the lowest with at least this precision out of fold."""

FALLBACK_THRESHOLD = 0.99
"""A specialist whose precision never reaches the target out of fold gets this threshold: it is
still routable when the classifier is all but sure, and the report shows its low recall."""

MIN_PER_CLASS = 4
"""Fewest examples a class needs to be learned (and cross-validated) at all."""

WEIGHTS_FILE = "weights.npz"
MODEL_FILE = "model.json"


@dataclass(frozen=True)
class RouterModel:
    """A trained classifier, its per-specialist thresholds and the embedding it was fitted on."""

    classes: tuple[str, ...]
    """``none`` first, then the specialists, in the order of the weight rows."""
    coef: np.ndarray = field(repr=False)
    """``(len(classes), dim)``."""
    intercept: np.ndarray = field(repr=False)
    """``(len(classes),)``."""
    thresholds: dict[str, float]
    """Per specialist: the probability it must reach to be chosen."""
    embedder: str
    """What the rows must come from: ``static:<table hash>`` or ``minilm:<model ref>``."""
    counts: dict[str, int] = field(default_factory=dict)
    """Training examples per class, for ``router list`` and the report."""

    @property
    def specialists(self) -> tuple[str, ...]:
        return tuple(name for name in self.classes if name != NONE)

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """Softmax over the classes, one row per embedding."""
        if vectors.shape[1] != self.coef.shape[1]:
            raise ModelError(
                f"the pre-router model expects {self.coef.shape[1]}-dimensional embeddings "
                f"({self.embedder}), got {vectors.shape[1]}"
            )
        logits = vectors @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def decide(self, probabilities: np.ndarray, allowed: Sequence[str] | None = None) -> str:
        """The decision for one row of :meth:`probabilities`: a specialist or :data:`NONE`.

        Args:
            allowed: Specialists that may be chosen (those of the catalog being served); a
                class the catalog no longer has is never chosen.
        """
        best, best_p = NONE, -1.0
        for index, name in enumerate(self.classes):
            if name == NONE or (allowed is not None and name not in allowed):
                continue
            if probabilities[index] > best_p:
                best, best_p = name, float(probabilities[index])
        none_p = float(probabilities[self.classes.index(NONE)])
        if best != NONE and best_p >= max(self.thresholds[best], none_p):
            return best
        return NONE

    def content_hash(self) -> str:
        """A hash of everything that decides: classes, weights, thresholds, embedder."""
        digest = hashlib.sha256()
        digest.update(json.dumps([self.classes, self.thresholds, self.embedder]).encode())
        digest.update(np.ascontiguousarray(self.coef, dtype=np.float32).tobytes())
        digest.update(np.ascontiguousarray(self.intercept, dtype=np.float32).tobytes())
        return digest.hexdigest()[:16]

    def save(self, directory: Path) -> str:
        """Write the model to ``directory`` (created); returns its :meth:`content_hash`."""
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(
            directory / WEIGHTS_FILE,
            coef=self.coef.astype(np.float32),
            intercept=self.intercept.astype(np.float32),
        )
        meta = {
            "classes": list(self.classes),
            "thresholds": self.thresholds,
            "embedder": self.embedder,
            "counts": self.counts,
            "hash": self.content_hash(),
        }
        (directory / MODEL_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return str(meta["hash"])

    @classmethod
    def load(cls, directory: Path, *, expected_hash: str | None = None) -> RouterModel:
        """Read a model :meth:`save` wrote.

        Raises:
            ModelError: It is missing, unreadable, or its content does not match
                ``expected_hash`` (the registered one).
        """
        try:
            meta = json.loads((directory / MODEL_FILE).read_text(encoding="utf-8"))
            with np.load(directory / WEIGHTS_FILE) as archive:
                coef, intercept = archive["coef"], archive["intercept"]
            model = cls(
                classes=tuple(meta["classes"]),
                coef=coef,
                intercept=intercept,
                thresholds={k: float(v) for k, v in meta["thresholds"].items()},
                embedder=str(meta["embedder"]),
                counts={k: int(v) for k, v in meta.get("counts", {}).items()},
            )
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"cannot read the pre-router model in {directory}: {exc}") from exc
        if expected_hash is not None and model.content_hash() != expected_hash:
            raise ModelError(
                f"the pre-router model in {directory} hashes to {model.content_hash()}, "
                f"registered as {expected_hash}: the files changed. Fix: retrain it "
                "('understudy router train') or roll back ('understudy router rollback')"
            )
        return model


def precision_thresholds(
    classes: Sequence[str], labels: Sequence[str], probabilities: np.ndarray
) -> dict[str, float]:
    """Per specialist, the lowest threshold whose precision is ≥ :data:`TARGET_PRECISION`.

    Precision is taken over the prompts the decision rule would send to the specialist at that
    threshold (its probability the highest among specialists, and at least the threshold), so
    the thresholds are chosen for the rule that will apply them. Every candidate above the chosen
    one must keep the target too, so one lucky point does not set it.
    """
    names = list(classes)
    truth = np.asarray(labels)
    specialist_columns = [i for i, name in enumerate(names) if name != NONE]
    best_column = np.asarray(specialist_columns)[
        probabilities[:, specialist_columns].argmax(axis=1)
    ]
    # The rule also wants the specialist to beat "none": rows where it does not never go to it.
    beats_none = probabilities.max(axis=1) > probabilities[:, names.index(NONE)]
    thresholds: dict[str, float] = {}
    for column in specialist_columns:
        name = names[column]
        mine = (best_column == column) & beats_none
        p = probabilities[mine, column]
        correct = truth[mine] == name
        order = np.argsort(-p)
        hits = np.cumsum(correct[order])
        precision = hits / np.arange(1, len(order) + 1)
        # Walk from the most confident down; stop before the precision (from here up) breaks.
        ok = np.minimum.accumulate(precision) >= TARGET_PRECISION
        count = int(ok.sum()) if ok.size and ok[0] else 0
        if count == 0:
            thresholds[name] = FALLBACK_THRESHOLD
            continue
        thresholds[name] = float(p[order][count - 1])
    return thresholds


def fit_router_model(
    vectors: np.ndarray,
    labels: Sequence[str],
    *,
    embedder: str,
    folds: int = 5,
    seed: int = 0,
    regularisation: float = 4.0,
) -> tuple[RouterModel, np.ndarray]:
    """Fit the classifier on ``vectors`` and choose its thresholds out of fold.

    Args:
        labels: A specialist name or :data:`NONE` per row.
        embedder: The embedder identity to record (see :attr:`RouterModel.embedder`).
        folds: Cross-validation folds for the out-of-fold probabilities the thresholds are
            chosen on; the final weights are fitted on every row.
        regularisation: Logistic regression's ``C`` (inverse strength).

    Returns:
        The model, and the out-of-fold probabilities its thresholds were chosen on (one row
        per example, in the model's class order), which the two-stage router's cut is chosen
        on too (``distill/prerouter/training.py``).

    Raises:
        ConfigurationError: No ``none`` examples, fewer than two classes, or a class with
            fewer than :data:`MIN_PER_CLASS` examples.
        ModelError: scikit-learn is not installed.
    """
    counts = {name: labels.count(name) for name in dict.fromkeys(labels)}
    if NONE not in counts or len(counts) < 2:
        raise ConfigurationError(
            f"the pre-router needs 'none' examples and at least one specialist, got {counts}"
        )
    small = {name: n for name, n in counts.items() if n < MIN_PER_CLASS}
    if small:
        raise ConfigurationError(
            f"too few examples to learn {sorted(small)} ({small}); each class needs "
            f"{MIN_PER_CLASS}. Fix: add examples to the specialist, or wait for more transcripts"
        )
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_predict
    except ImportError as exc:
        raise ModelError(
            f"training the pre-router needs scikit-learn ({exc}). "
            "Fix: pip install 'understudy[local]'"
        ) from exc
    classes = (NONE, *sorted(name for name in counts if name != NONE))
    y = np.array([classes.index(label) for label in labels])

    def estimator() -> Any:
        return LogisticRegression(C=regularisation, max_iter=2000, class_weight="balanced")

    splits = StratifiedKFold(min(folds, min(counts.values())), shuffle=True, random_state=seed)
    held_out = cross_val_predict(estimator(), vectors, y, cv=splits, method="predict_proba")
    final = estimator().fit(vectors, y)
    coef, intercept = np.asarray(final.coef_), np.asarray(final.intercept_)
    if len(classes) == 2:  # binary: one row for class 1; the softmax of (0, z) is its sigmoid
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.array([0.0, intercept[0]])
    model = RouterModel(
        classes=classes,
        coef=coef.astype(np.float32),
        intercept=intercept.astype(np.float32),
        thresholds=precision_thresholds(classes, list(labels), held_out),
        embedder=embedder,
        counts={name: counts[name] for name in classes},
    )
    return model, held_out
