"""``distill propose`` end to end: transcripts → proposals in the registry → new specialists.

:mod:`orchestrator.proposals` does the clustering; this module feeds it the lead-answered runs
from the transcript store and a pre-router over every specialist that exists or is being trained
(so a task already taken is not proposed again), stores the round's proposals, and turns an
accepted proposal into a registered specialist definition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from distill.registry import Proposal, RegistryStore, SpecialistDefinition
from orchestrator.prerouter import Embedder, PreRouter
from orchestrator.proposals import LeadQuery, Proposer, lead_answered
from orchestrator.transcripts import TranscriptStore
from serving.reconcile import known_catalog
from specialists.catalog import Catalog

PAGE_SIZE = 500
SCAN_FACTOR = 10
"""Runs scanned per lead-answered run wanted: most traffic may go to specialists already."""


async def recent_lead_queries(
    store: TranscriptStore,
    max_queries: int,
    *,
    on_progress: Callable[[int, int], None] = lambda _scanned, _kept: None,
) -> list[LeadQuery]:
    """The newest ``max_queries`` runs the lead answered itself (at most ``SCAN_FACTOR`` times
    as many runs are scanned), oldest first."""
    queries: dict[str, LeadQuery] = {}
    scanned = 0
    while len(queries) < max_queries and scanned < max_queries * SCAN_FACTOR:
        page = await store.list_runs(limit=PAGE_SIZE, offset=scanned)
        if not page:
            break
        scanned += len(page)
        for query in lead_answered(page):
            queries.setdefault(query.run_id, query)  # a run recorded meanwhile shifts pages
        on_progress(scanned, len(queries))
    newest = sorted(queries.values(), key=lambda q: (q.created_at, q.run_id))[-max_queries:]
    return newest


async def propose(
    registry: RegistryStore,
    store: TranscriptStore,
    base: Catalog,
    *,
    embedder: Embedder,
    cluster_threshold: float,
    coverage_threshold: float,
    min_runs: int,
    max_runs: int,
    now: datetime | None = None,
    on_progress: Callable[[int, int], None] = lambda _scanned, _kept: None,
) -> list[Proposal]:
    """Recompute the open proposals from the newest lead-answered runs and store them.

    Args:
        base: The catalog without the registry (built-ins and settings overrides).
        cluster_threshold: Mean pairwise cosine at which queries are one task.
        coverage_threshold: Mean best pre-router score at which a task is a specialist's.
    """
    queries = await recent_lead_queries(store, max_runs, on_progress=on_progress)
    snapshot = await registry.snapshot()
    known = known_catalog(base, snapshot)
    taken = set(known.names) | {
        p.name for p in await registry.list_proposals() if p.status != "open"
    }
    proposer = Proposer(
        embedder,
        PreRouter(known, embedder),
        threshold=cluster_threshold,
        coverage_threshold=coverage_threshold,
        min_runs=min_runs,
        taken_names=taken,
    )
    drafts = await asyncio.to_thread(proposer.propose, queries, now=now)
    return await registry.replace_open_proposals(drafts)


def definition_for(proposal: Proposal) -> SpecialistDefinition:
    """The specialist a proposal describes: its name, description and examples, a short system
    prompt (a small model recomputes it for every request) and the validator the lead's
    answers suggested."""
    topic = proposal.name.replace("_", " ")
    form = (
        "Reply with one ```python code block."
        if proposal.validator == "python_function"
        else "Reply with the answer only."
    )
    return SpecialistDefinition(
        name=proposal.name,
        description=proposal.description,
        system_prompt=f"You handle {topic} requests. {form}",
        validator=proposal.validator,
        examples=proposal.examples,
        max_tokens=proposal.max_tokens,
        proposal_id=proposal.id,
    )


async def accept(registry: RegistryStore, proposal_id: int) -> SpecialistDefinition:
    """Register the specialist ``proposal_id`` describes (the proposal becomes ``accepted``);
    if it was registered already, its definition."""
    proposal = await registry.get_proposal(proposal_id)
    existing = await registry.get_definition(proposal.name)
    if existing is not None and existing.proposal_id == proposal.id:
        return existing
    return await registry.define_specialist(definition_for(proposal))
