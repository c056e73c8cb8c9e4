"""The two-stage pre-router: the static embedding decides when it is sure, MiniLM the rest.

The static embedding (:mod:`orchestrator.prerouter_static`) decides in ~0.2 ms but routes less
precisely than MiniLM (~20 ms); most prompts, though, are easy for both. A version trained with
both (``understudy router train --embedder two-stage``) lets the static classifier answer every
prompt whose most probable class (``none`` included) reaches the version's *cut*, and hands the
others to MiniLM's. The cut is the lowest at which the mix, on both classifiers' out-of-fold
predictions of the training examples, is as accurate as MiniLM alone with a lowest specialist
precision no worse, so the fast path costs no routing quality on the data it
was chosen on (``distill/prerouter/training.py``); the version gate then checks the mix on
held-out prompts like any candidate.

With a difficulty model (cascade's skip, :mod:`orchestrator.difficulty`), which reads MiniLM's
embedding, a prompt the static classifier decided is embedded by MiniLM too, but only when a run
asks for its difficulty (:meth:`TwoStagePreRouter.difficulty_of`): routing stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from orchestrator.prerouter import PreRouter, RouteDecision
from orchestrator.prerouter_learned import LearnedPreRouter
from specialists.catalog import Catalog


class TwoStagePreRouter(PreRouter):
    """Routes with ``fast`` where its top probability reaches ``cut``, else with ``precise``.

    Args:
        fast: The static-embedding classifier.
        precise: The MiniLM classifier; its version, difficulty model and catalog are the
            router's.
        cut: The top probability at which ``fast`` decides.
    """

    def __init__(self, fast: LearnedPreRouter, precise: LearnedPreRouter, *, cut: float) -> None:
        super().__init__(precise.catalog, precise.embedder)
        self.fast = fast
        self.precise = precise
        self.cut = cut
        self.version = precise.version
        self.difficulty = precise.difficulty
        self.fingerprint = f"{precise.fingerprint}:{fast.model.content_hash()}:{cut}"

    def for_catalog(self, catalog: Catalog) -> TwoStagePreRouter:
        return TwoStagePreRouter(
            self.fast.for_catalog(catalog), self.precise.for_catalog(catalog), cut=self.cut
        )

    def route_many(self, prompts: Sequence[str]) -> list[RouteDecision]:
        if not prompts:
            return []
        probabilities = self.fast.model.probabilities(self.fast._embed(prompts))
        sure = probabilities.max(axis=1) >= self.cut
        decided: dict[int, RouteDecision] = {}
        sure_rows = np.flatnonzero(sure).tolist()
        fast = self.fast.decide_many([prompts[i] for i in sure_rows], probabilities[sure], None)
        decided.update(zip(sure_rows, fast, strict=True))
        unsure_rows = np.flatnonzero(~sure).tolist()
        precise = self.precise.route_many([prompts[i] for i in unsure_rows])
        decided.update(zip(unsure_rows, precise, strict=True))
        return [decided[i] for i in range(len(prompts))]

    def difficulty_of(self, prompt: str, decision: RouteDecision) -> float | None:
        """MiniLM's decisions come scored; one of the static stage's is embedded by MiniLM
        now, when a run asks (routing itself never pays a MiniLM pass for it)."""
        model = self.difficulty
        if (
            decision.difficulty is not None
            or model is None
            or decision.best not in model.specialists
        ):
            return decision.difficulty
        return model.score(self.precise._embed([prompt])[0], prompt, decision.best)
