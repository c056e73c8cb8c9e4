"""Routers under evaluation: one score per prompt, higher meaning "this needs the strong model".

The interface is RouteLLM's one-method ``Router.calculate_strong_win_rate(prompt)``
(``routellm/routers/routers.py``), taken a label set at a time, so that a router that learns can
train on some prompts and score the others (:class:`~evals.router_eval.difficulty.DifficultyRouter`
cross-validates). Only the oracle may look at the answers' qualities to score; a learning router
uses them to train, and never scores a prompt it trained on.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import numpy as np

from evals.router_eval.labels import RoutingLabels

RANDOM_PASSES = 10
"""RouteLLM's ``--random-iters``: the random router's curve is the mean of this many passes."""


class Router(abc.ABC):
    """Scores every prompt of a label set; the evaluation sweeps thresholds over the scores."""

    name: ClassVar[str]
    """How tables, JSON and the ``--router`` option name it."""
    passes: int = 1
    """Independent scorings whose curves are averaged; more than one only for a random router."""

    @abc.abstractmethod
    def score(self, labels: RoutingLabels, *, seed: int) -> np.ndarray:
        """One finite score per prompt of ``labels``, in order.

        Args:
            labels: The prompts, and the qualities a learning router may train on.
            seed: Seeds whatever is random (pass ``i`` of ``passes`` gets ``seed + i``).
        """


class RandomRouter(Router):
    """Uniform random scores: the baseline every router must beat (APGR ≈ 0.5).

    RouteLLM's ``RandomRouter`` returns ``random.uniform(0, 1)`` per prompt; here each pass draws
    from its own seeded generator, so the averaged curve is reproducible.
    """

    name = "random"

    def __init__(self, *, passes: int = RANDOM_PASSES) -> None:
        if passes < 1:
            raise ValueError(f"the random router needs at least one pass, got {passes}")
        self.passes = passes

    def score(self, labels: RoutingLabels, *, seed: int) -> np.ndarray:
        return np.random.default_rng(seed).uniform(0.0, 1.0, len(labels))


class OracleRouter(Router):
    """Knows the answers: scores 1 exactly where the strong model does better, else 0.

    The ceiling for a router that predicts whether the strong model wins, the quantity RouteLLM's
    routers estimate; at the point where it calls the strong model for precisely those prompts it
    reaches RouteLLM's ``get_optimal_accuracy``. Its APGR can pass 1: it keeps the weak model's
    answers where the strong one is worse, which the strong model alone cannot.
    """

    name = "oracle"

    def score(self, labels: RoutingLabels, *, seed: int) -> np.ndarray:
        return labels.strong_wins.astype(float)
