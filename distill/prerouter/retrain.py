"""Gather the training and gate examples, and retrain when enough new labels accumulated:
what ``understudy router train`` and the worker's ``prerouter`` loop share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from distill.prerouter.difficulty import CascadeOutcome, cascade_outcomes
from distill.prerouter.labels import SOURCE, latest_labels, recent_runs
from distill.prerouter.seed import Labelled, seed_examples
from distill.prerouter.training import TrainingOutcome, split_examples, train_and_register
from distill.prerouter.versions import RouterVersion, RouterVersions
from evals.data import DataSource
from evals.suites.routing import labelled_samples
from orchestrator.prerouter import Embedder
from orchestrator.prerouter_model import NONE
from orchestrator.transcripts import TranscriptStore
from specialists.catalog import Catalog

GATE_PER_DOMAIN = 100
"""Held-out routing-suite prompts per domain the gate compares on (with held-out transcripts)."""
MAX_RUNS = 20_000
"""Newest router and cascade runs read for labels, per mode."""


@dataclass(frozen=True, slots=True)
class Examples:
    train: list[Labelled]
    held_out: list[Labelled]
    outcomes: list[CascadeOutcome]
    """Cascade attempts (accepted or escalated): the difficulty skip's labels."""

    @property
    def transcript_labels(self) -> int:
        return sum(e.source == SOURCE for e in (*self.train, *self.held_out))

    def new_labels_since(self, version: RouterVersion | None) -> int:
        """Routing labels and cascade outcomes beyond those ``version`` learned from."""
        learned = (version.transcript_labels + version.difficulty_labels) if version else 0
        return self.transcript_labels + len(self.outcomes) - learned


async def gather_examples(source: DataSource, catalog: Catalog, store: TranscriptStore) -> Examples:
    """Seed data and transcript labels, split into training and gate examples, and the
    cascade outcomes."""
    runs = await recent_runs(store, max_runs=MAX_RUNS)
    labels = latest_labels(runs, catalog.names)
    train, held_transcripts = split_examples([*seed_examples(source, catalog), *labels])
    held = [
        Labelled(sample.prompt, sample.reference, "routing_suite")
        for sample in labelled_samples(source, GATE_PER_DOMAIN)
        if sample.reference in (*catalog.names, NONE)
    ]
    return Examples(train, held + held_transcripts, cascade_outcomes(runs, catalog.names))


async def retrain_if_due(
    source: DataSource,
    catalog: Catalog,
    store: TranscriptStore,
    versions: RouterVersions,
    embedder: Embedder,
    *,
    min_new_labels: int,
    log: Callable[[str], None],
    fast_embedder: Embedder | None = None,
) -> TrainingOutcome | None:
    """Train, gate and (when it passes) promote a new version once ``min_new_labels`` more
    transcript labels exist than the active version learned from; ``None`` when not due.
    With ``fast_embedder`` (the static embedding) the version is trained two-stage."""
    examples = await gather_examples(source, catalog, store)
    new = examples.new_labels_since(versions.active())
    if new < min_new_labels:
        return None
    log(f"prerouter: {new} new routing labels and cascade outcomes; retraining")
    outcome = await asyncio.to_thread(
        train_and_register,
        examples.train,
        examples.held_out,
        catalog=catalog,
        embedder=embedder,
        versions=versions,
        promote=True,
        transcript_labels=examples.transcript_labels,
        outcomes=examples.outcomes,
        fast_embedder=fast_embedder,
    )
    verdict = "promoted" if outcome.promoted else "refused by the gate"
    log(f"prerouter: v{outcome.version.version} {verdict} ({outcome.gate.reason})")
    return outcome
