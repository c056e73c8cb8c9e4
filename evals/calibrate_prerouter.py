"""Calibrate the pre-router's "none" threshold on real prompts, and say how well it routes.

Run it from the repository root::

    python -m evals.calibrate_prerouter --data-dir ../shared/data --n 200

It routes the routing suite's labelled prompts (:mod:`evals.suites.routing`, which says where each
label comes from) with the real MiniLM embedder and the default catalog, and prints the accuracy
per domain, a threshold sweep, and the threshold that maximises macro accuracy (the mean of the
four per-domain accuracies, so the large domains do not drown the small ones).

The data is read in place from ``--data-dir`` (default ``UNDERSTUDY_DATA_DIR``), never copied.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evals.data import DataSource, script_data_dir
from evals.samples import Sample
from evals.suites.routing import DOMAINS, labelled_samples
from orchestrator.prerouter import (
    DEFAULT_THRESHOLD,
    Embedder,
    MiniLMEmbedder,
    PreRouter,
    RouteDecision,
    clip_prompt,
)
from specialists.catalog import Catalog


class _MemoEmbedder:
    """Embeds each distinct text once, so the sweep and the scoring comparison reuse vectors."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self._cache: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(text for text in texts if text not in self._cache))
        if missing:
            self._cache.update(zip(missing, self.inner.embed(missing), strict=True))
        return np.stack([self._cache[text] for text in texts])


@dataclass(frozen=True, slots=True)
class SweepRow:
    threshold: float
    accuracy: dict[str, float]
    """Per domain: share of its prompts routed to the right specialist (or to none)."""

    @property
    def macro(self) -> float:
        return float(np.mean(list(self.accuracy.values())))


def _accuracy(labels: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    return {
        domain: float(
            np.mean([p == d for d, p in zip(labels, predicted, strict=True) if d == domain])
        )
        for domain in DOMAINS
        if domain in labels
    }


def sweep(
    labels: Sequence[str], decisions: Sequence[RouteDecision], thresholds: Iterable[float]
) -> list[SweepRow]:
    """Accuracy per domain at each threshold, re-deciding from the recorded scores."""
    rows = []
    for threshold in thresholds:
        predicted = [d.best if d.best_score >= threshold else "none" for d in decisions]
        rows.append(SweepRow(round(threshold, 4), _accuracy(labels, predicted)))
    return rows


def choose_threshold(rows: Sequence[SweepRow]) -> SweepRow:
    """The row with the best macro accuracy averaged with its neighbours (prefers a plateau to a
    spike, so the choice survives a different sample); the lower threshold on a tie."""
    macros = np.array([row.macro for row in rows])
    smoothed = np.convolve(np.pad(macros, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    return rows[int(np.argmax(smoothed))]


def compare_scoring(
    router: PreRouter, embedder: Embedder, items: Sequence[Sample]
) -> dict[str, tuple[float, float]]:
    """Best macro accuracy (and its threshold) of other ways to combine per-text similarities.

    Shows why the pre-router scores by prototype; reuses the memoised vectors.
    """
    texts, owners = [], []
    for index, specialist in enumerate(router.catalog):
        for text in (specialist.description, *specialist.examples):
            texts.append(text)
            owners.append(index)
    anchors = embedder.embed([clip_prompt(text) for text in texts])
    owner = np.asarray(owners)
    prompts = embedder.embed([clip_prompt(item.prompt) for item in items])
    similarity = prompts @ anchors.T
    per_specialist = [similarity[:, owner == i] for i in range(len(router.names))]

    def top(k: int) -> np.ndarray:
        return np.stack([np.sort(s, axis=1)[:, -k:].mean(axis=1) for s in per_specialist], 1)

    combinations = {
        "max over description and examples": top(1),
        "mean of top 2": top(2),
        "mean of top 3": top(3),
        "mean of all": np.stack([s.mean(axis=1) for s in per_specialist], 1),
        "description only": np.stack([s[:, 0] for s in per_specialist], 1),
        "prototype (used)": prompts @ router.prototypes().T,
    }
    labels = [item.reference for item in items]
    thresholds = np.arange(0.0, 0.5, 0.01)
    results = {}
    for name, scores in combinations.items():
        best = [router.names[i] for i in scores.argmax(axis=1)]
        top_score = scores.max(axis=1)
        macros = []
        for threshold in thresholds:
            predicted = [
                b if s >= threshold else "none" for b, s in zip(best, top_score, strict=True)
            ]
            macros.append(np.mean(list(_accuracy(labels, predicted).values())))
        i = int(np.argmax(macros))
        results[name] = (float(macros[i]), float(thresholds[i]))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Calibrate the pre-router's 'none' threshold on the shared evaluation data.",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="evaluation data (default: UNDERSTUDY_DATA_DIR, else ../shared/data)",
    )
    parser.add_argument("--n", type=int, default=200, help="prompts per domain (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument(
        "--model", default=None, help="embedding model directory or Hub id (default: bundled)"
    )
    parser.add_argument(
        "--compare-scoring",
        action="store_true",
        help="also report other ways to combine description and example similarities",
    )
    args = parser.parse_args(argv)
    data_dir = args.data_dir or script_data_dir()
    if data_dir is None or not data_dir.is_dir():
        parser.error(
            f"no evaluation data at {data_dir}; pass --data-dir or set UNDERSTUDY_DATA_DIR"
        )

    items = labelled_samples(DataSource(data_dir), args.n, seed=args.seed)
    embedder = _MemoEmbedder(MiniLMEmbedder(args.model))
    router = PreRouter(Catalog.default(), embedder)
    print(f"{len(items)} prompts from {data_dir} (seed {args.seed}); catalog {router.names}")
    decisions = router.route_many([item.prompt for item in items])
    labels = [item.reference for item in items]

    rows = sweep(labels, decisions, np.arange(0.05, 0.351, 0.01))
    chosen = choose_threshold(rows)
    current = sweep(labels, decisions, [DEFAULT_THRESHOLD])[0]
    print("\nthreshold sweep (accuracy per domain; macro = their mean)")
    print(f"{'threshold':>9}  " + "  ".join(f"{d:>6}" for d in DOMAINS) + "   macro")
    for row in rows:
        mark = "  ← chosen" if row is chosen else ""
        cells = "  ".join(f"{row.accuracy[d]:6.3f}" for d in DOMAINS)
        print(f"{row.threshold:9.2f}  {cells}  {row.macro:6.3f}{mark}")

    predicted = [d.best if d.best_score >= chosen.threshold else "none" for d in decisions]
    print(f"\nat threshold {chosen.threshold:.2f}, by source (routed to → count)")
    for source in dict.fromkeys(item.metadata["source"] for item in items):
        picks = [
            p for item, p in zip(items, predicted, strict=True) if item.metadata["source"] == source
        ]
        label = next(item.reference for item in items if item.metadata["source"] == source)
        counts = ", ".join(f"{name} {picks.count(name)}" for name in [*router.names, "none"])
        correct = picks.count(label) / len(picks)
        print(f"  {source:15} ({label:5}) n={len(picks):4}  correct {correct:6.3f}   {counts}")

    if args.compare_scoring:
        print("\nscoring comparison (best macro accuracy @ its threshold)")
        for name, (macro, threshold) in compare_scoring(router, embedder, items).items():
            print(f"  {name:34} {macro:.3f} @ {threshold:.2f}")

    print(
        f"\nDEFAULT_THRESHOLD now {DEFAULT_THRESHOLD:.2f}: macro {current.macro:.3f} "
        + " ".join(f"{d} {current.accuracy[d]:.3f}" for d in DOMAINS)
    )
    print(
        f"chosen threshold {chosen.threshold:.2f}: macro {chosen.macro:.3f} "
        + " ".join(f"{d} {chosen.accuracy[d]:.3f}" for d in DOMAINS)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
