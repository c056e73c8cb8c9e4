"""Out-of-fold scores: a learning router is never scored on a prompt it trained on.

The labels are both the training data and the test set, so each prompt's score must come from a
model fitted without it. Stratified k-fold splits the prompts into ``folds`` parts with the same
share of positives; each part is scored by a model trained on the other ``folds - 1``
(scikit-learn's ``cross_val_predict``). The split is seeded, so a run is reproducible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from evals.errors import EvalError

if TYPE_CHECKING:
    from sklearn.base import ClassifierMixin

DEFAULT_FOLDS = 5


class TooFewExamplesError(EvalError):
    """A class has fewer examples than there are folds, so some fold could not contain it."""

    def __init__(self, positives: int, negatives: int, folds: int) -> None:
        self.positives = positives
        self.negatives = negatives
        self.folds = folds
        super().__init__(
            f"{folds}-fold cross-validation needs at least {folds} prompts of each kind; "
            f"the labels have {positives} where the strong model wins and {negatives} where it "
            "does not (lower --folds)"
        )


def out_of_fold_scores(
    features: np.ndarray,
    target: np.ndarray,
    model: ClassifierMixin,
    *,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
) -> np.ndarray:
    """P(target) for every row, each predicted by a copy of ``model`` fitted on the other folds.

    Args:
        features: One row per example.
        target: One boolean per example.
        model: An unfitted scikit-learn classifier with ``predict_proba``; each fold fits a clone.
        folds: Number of folds (at least 2).
        seed: Seeds the shuffle that assigns examples to folds.
    """
    target = np.asarray(target, dtype=bool)
    positives = int(target.sum())
    if folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {folds}")
    if min(positives, len(target) - positives) < folds:
        raise TooFewExamplesError(positives, len(target) - positives, folds)
    from sklearn.model_selection import StratifiedKFold, cross_val_predict  # the eval extra

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_predict(model, features, target, cv=splitter, method="predict_proba")[:, 1]
