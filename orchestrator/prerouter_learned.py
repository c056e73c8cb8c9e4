"""The learned pre-router in the orchestrator's place of the prototype one.

:class:`LearnedPreRouter` is a :class:`~orchestrator.prerouter.PreRouter` (the orchestrator, the
registry sync and the CLI take it where they take the prototype router) whose decision comes from
a trained :class:`~orchestrator.prerouter_model.RouterModel` instead of prototype cosines. Its
``scores`` are the classifier's probabilities and its ``threshold`` the best specialist's own.

A catalog specialist the model has not learned yet (distillation just created it) is never chosen
until the next retraining, which adds it (``distill/prerouter/``); a class the catalog no longer
holds is never chosen either.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from orchestrator.difficulty import DifficultyModel
from orchestrator.prerouter import Embedder, MiniLMEmbedder, PreRouter, RouteDecision
from orchestrator.prerouter_model import NONE, RouterModel
from orchestrator.prerouter_static import StaticEmbedder
from specialists.catalog import Catalog
from specialists.errors import ModelError


def embedder_identity(embedder: Embedder) -> str:
    """What a trained model records as its embedder, and checks again when it is loaded."""
    if isinstance(embedder, StaticEmbedder):
        return f"static:{embedder.table_hash}"
    if isinstance(embedder, MiniLMEmbedder):
        return f"minilm:{'/'.join(Path(embedder.model_ref).parts[-2:])}"
    return f"custom:{type(embedder).__qualname__}"


class LearnedPreRouter(PreRouter):
    """Routes by a trained classifier with per-specialist thresholds.

    Args:
        catalog: The specialists being served.
        embedder: Must be the embedder the model was trained on (:func:`embedder_identity`).
        model: The trained classifier.
        version: The registry's version number of ``model``, for decisions' provenance.
        difficulty: The version's difficulty model (cascade's skip), if it has one.

    Raises:
        ModelError: ``embedder`` is not the one ``model`` (or ``difficulty``) was trained on.
    """

    def __init__(
        self,
        catalog: Catalog,
        embedder: Embedder,
        model: RouterModel,
        *,
        version: int | None,
        difficulty: DifficultyModel | None = None,
    ) -> None:
        super().__init__(catalog, embedder)
        identity = embedder_identity(embedder)
        for trained_on in {model.embedder, difficulty.embedder if difficulty else identity}:
            if trained_on != identity:
                raise ModelError(
                    f"the pre-router model was trained on {trained_on} embeddings, not "
                    f"{identity}. Fix: retrain it with this embedder ('understudy router train')"
                )
        self.model = model
        self.version = version
        self.difficulty = difficulty
        # What evaluation caches key routing on: the catalog's content and the model's.
        self.fingerprint = f"{self.fingerprint}:{model.content_hash()}"

    def for_catalog(self, catalog: Catalog) -> LearnedPreRouter:
        return LearnedPreRouter(
            catalog, self.embedder, self.model, version=self.version, difficulty=self.difficulty
        )

    def route_many(self, prompts: Sequence[str]) -> list[RouteDecision]:
        if not prompts:
            return []
        vectors = self._embed(prompts)
        return self.decide_many(prompts, self.model.probabilities(vectors), vectors)

    def decide_many(
        self, prompts: Sequence[str], probabilities: np.ndarray, vectors: np.ndarray | None
    ) -> list[RouteDecision]:
        """Decisions from the model's ``probabilities`` for ``prompts``; their difficulty is
        scored from ``vectors`` (this router's embeddings of them) when given."""
        column = {name: index for index, name in enumerate(self.model.classes)}
        decisions = []
        for index, (prompt, row) in enumerate(zip(prompts, probabilities, strict=True)):
            scores = {
                name: round(float(row[column[name]]), 4) if name in column else 0.0
                for name in self.names
            }
            best = max(self.names, key=scores.__getitem__)
            chosen = self.model.decide(row, allowed=self.names)
            difficulty = None
            if self.difficulty is not None and vectors is not None:
                difficulty = self.difficulty.score(vectors[index], prompt, best)
            decisions.append(
                RouteDecision(
                    specialist=None if chosen == NONE else chosen,
                    scores=scores,
                    threshold=self.model.thresholds.get(best, 1.0),
                    best=best,
                    difficulty=difficulty,
                )
            )
        return decisions
