"""Offline router evaluation on RouteLLM's per-prompt strong/weak labels.

A router scores each prompt (higher: send it to the strong model); the evaluation sweeps
thresholds at the deciles of the scores and reports quality against the share of strong calls,
summarised by CPT(50 %), CPT(80 %) and APGR, all computed as RouteLLM computes them
(:mod:`evals.router_eval.metrics` cites the code). ``understudy eval router`` runs it.

The learning router (:mod:`evals.router_eval.difficulty`) needs scikit-learn and the plot
(:mod:`evals.router_eval.plot`) matplotlib, both in the ``eval`` extra; import those modules
directly. Loading this package needs neither.
"""

from evals.router_eval.crossval import DEFAULT_FOLDS, TooFewExamplesError, out_of_fold_scores
from evals.router_eval.embeddings import CachedEmbedder, EmbeddingProgress
from evals.router_eval.evaluate import Evaluation, RouterResult, evaluate_router
from evals.router_eval.labels import LabelSet, RoutingLabels, load_labels
from evals.router_eval.metrics import (
    CPT_LEVELS,
    CurvePoint,
    RouterMetrics,
    average_curves,
    summarize,
    threshold_sweep,
)
from evals.router_eval.routers import RANDOM_PASSES, OracleRouter, RandomRouter, Router

__all__ = [
    "CPT_LEVELS",
    "DEFAULT_FOLDS",
    "RANDOM_PASSES",
    "CachedEmbedder",
    "CurvePoint",
    "EmbeddingProgress",
    "Evaluation",
    "LabelSet",
    "OracleRouter",
    "RandomRouter",
    "Router",
    "RouterMetrics",
    "RouterResult",
    "RoutingLabels",
    "TooFewExamplesError",
    "average_curves",
    "evaluate_router",
    "load_labels",
    "out_of_fold_scores",
    "summarize",
    "threshold_sweep",
]
