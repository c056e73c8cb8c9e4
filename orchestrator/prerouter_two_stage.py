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
embedding, a prompt the static classifier sent to a specialist is embedded by MiniLM as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

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
        fast = self._with_difficulty(prompts, sure_rows, fast)
        decided.update(zip(sure_rows, fast, strict=True))
        unsure_rows = np.flatnonzero(~sure).tolist()
        precise = self.precise.route_many([prompts[i] for i in unsure_rows])
        decided.update(zip(unsure_rows, precise, strict=True))
        return [decided[i] for i in range(len(prompts))]

    def _with_difficulty(
        self, prompts: Sequence[str], rows: list[int], decisions: list[RouteDecision]
    ) -> list[RouteDecision]:
        """``decisions`` with the difficulty of those sent to a specialist, from MiniLM."""
        if self.difficulty is None:
            return decisions
        chosen = [k for k, decision in enumerate(decisions) if decision.specialist is not None]
        if not chosen:
            return decisions
        texts = [prompts[rows[k]] for k in chosen]
        vectors = self.precise._embed(texts)
        scored = list(decisions)
        for k, text, vector in zip(chosen, texts, vectors, strict=True):
            difficulty = self.difficulty.score(vector, text, decisions[k].best)
            scored[k] = replace(decisions[k], difficulty=difficulty)
        return scored
