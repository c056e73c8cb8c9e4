"""Proposals for new specialists: clusters of the requests the lead keeps answering itself.

Every run the lead answered without a specialist is traffic a specialist could take. The user
queries of those runs are embedded (the pre-router's MiniLM), grouped by average-linkage
agglomerative clustering on cosine similarity — a group's members are, on average, at least
``cluster_threshold`` (:data:`~distill.config.DEFAULT_CLUSTER_THRESHOLD`) similar to each other —
and each group of at least ``min_runs`` runs that no existing specialist covers becomes a
:class:`ProposalDraft`: a name from its most salient words, a tool description, its most central
queries as examples, and the monthly lead cost it would save at the rate observed.

"No specialist covers it" means the group does not look like any specialist's traffic: its
queries' mean best pre-router score (cosine to a specialist's prototype) is below
``coverage_threshold`` (:data:`~distill.config.DEFAULT_COVERAGE_THRESHOLD`). That is stricter
than the router's own threshold, which decides single prompts and is deliberately generous.
Average linkage rather than single linkage, because a chain of near neighbours must not merge two
tasks. Both thresholds are calibrated on real prompts by ``python -m distill.calibrate_clusters``.

A round (:func:`propose`) feeds the clustering the newest lead-answered runs from the transcript
store and a pre-router over every specialist that exists or is being trained (so a task already
taken is not proposed again), and stores its proposals in the registry; an accepted proposal
becomes a registered specialist definition (:func:`accept`). Only numpy (and scipy's hierarchical
clustering, installed with the embedder) is used for the clustering; the embedder is passed in.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from distill.catalog import known_catalog
from distill.config import DEFAULT_CLUSTER_THRESHOLD, DEFAULT_COVERAGE_THRESHOLD, ProposalConfig
from distill.registry import Proposal, ProposalDraft, RegistryStore, SpecialistDefinition
from orchestrator.handover import has_tool_turns
from orchestrator.prerouter import Embedder, PreRouter, clip_prompt
from orchestrator.transcripts import RunRecord, TranscriptStore
from specialists.catalog import Catalog
from specialists.validators import python_function

PAGE_SIZE = 500
SCAN_FACTOR = 10
"""Runs scanned per lead-answered run wanted: most traffic may go to specialists already."""
MONTH_DAYS = 30.0
MIN_WINDOW_DAYS = 1.0
"""Savings are extrapolated from at least a day of traffic, so a burst of minutes is not
multiplied into a month."""
MAX_EXAMPLES = 5
DUPLICATE_SIMILARITY = 0.98
"""Cosine above which two queries are the same request for the examples' purposes."""
CHARS_PER_TOKEN = 4
MIN_ANSWER_TOKENS = 32
MAX_ANSWER_TOKENS = 1024
NAME_WORDS = 2
VALIDATOR_SHARE = 0.9
"""Share of the lead's answers that must pass a strict validator for a proposal to adopt it."""

_WORD = re.compile(r"[a-z][a-z']+")
_STOPWORDS_TEXT = """
    a about above after again all also am an and any are as at be because been before being below
    between both but by can could did do does doing don down during each few for from further
    had has have having he her here hers him his how i if in into is it its itself just let like me
    more most my no nor not now of off on once only or other our ours out over own please same she
    should so some such than that the their theirs them then there these they this those through to
    too under until up very was we were what when where which while who whom why will with would
    you your yours write give tell make find need want help using use get know new one two three
    given following show explain describe"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
"""Words too common in requests to name a task by."""


@dataclass(frozen=True, slots=True)
class LeadQuery:
    """One run the lead answered itself: the user's query, the answer, and what it cost."""

    run_id: str
    query: str
    answer: str
    cost_usd: float
    created_at: datetime


def lead_answered(runs: Iterable[RunRecord]) -> list[LeadQuery]:
    """The runs whose answer is the lead's own work: lead tokens spent, no specialist consulted,
    no error, no fallback, and no tools of the app's (a run that handed calls over did not
    answer: its text is what the lead said beside them; one that continues a tool conversation
    answers from what the tools said). Oldest first."""
    queries = []
    for run in runs:
        if not run.answer or run.error or run.degraded or run.specialists or run.app_tool_calls:
            continue
        if has_tool_turns(run.input_messages):
            continue
        if run.lead_input_tokens + run.lead_output_tokens == 0:
            continue
        query = _last_user_message(run.input_messages)
        if query:
            queries.append(LeadQuery(run.run_id, query, run.answer, run.cost_usd, run.created_at))
    return sorted(queries, key=lambda q: (q.created_at, q.run_id))


def cluster(vectors: np.ndarray, threshold: float) -> list[list[int]]:
    """Groups of row indices by average-linkage agglomerative clustering on cosine similarity.

    Args:
        vectors: Unit rows, one per query.
        threshold: Cosine similarity; two groups merge while their members' mean pairwise
            similarity is at least this.

    Returns:
        Every row in exactly one group; largest group first, then by first row.
    """
    n = len(vectors)
    if n < 2:
        return [[0]] if n else []
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    distances = np.clip(pdist(np.asarray(vectors, dtype=np.float64), metric="cosine"), 0.0, 2.0)
    labels = fcluster(linkage(distances, method="average"), t=1.0 - threshold, criterion="distance")
    groups: dict[int, list[int]] = {}
    for index, label in enumerate(labels.tolist()):
        groups.setdefault(label, []).append(index)
    return sorted(groups.values(), key=lambda group: (-len(group), group[0]))


class Proposer:
    """Turns lead-answered runs into proposals for specialists that do not exist yet.

    Args:
        embedder: Embeds queries (the pre-router's MiniLM in production).
        prerouter: Holds the prototypes of every specialist that exists or is being trained.
        threshold: Clustering threshold (mean pairwise cosine).
        coverage_threshold: Mean best prototype score at which a group is a specialist's task.
        min_runs: Smallest group worth a specialist.
        taken_names: Names a proposal must not reuse (specialists, earlier proposals).
    """

    def __init__(
        self,
        embedder: Embedder,
        prerouter: PreRouter,
        *,
        threshold: float = DEFAULT_CLUSTER_THRESHOLD,
        coverage_threshold: float = DEFAULT_COVERAGE_THRESHOLD,
        min_runs: int = 20,
        taken_names: Iterable[str] = (),
    ) -> None:
        self.embedder = embedder
        self.prerouter = prerouter
        self.threshold = threshold
        self.coverage_threshold = coverage_threshold
        self.min_runs = min_runs
        self.taken_names = set(taken_names)

    def propose(
        self, queries: Sequence[LeadQuery], *, now: datetime | None = None
    ) -> list[ProposalDraft]:
        """Proposals for uncovered groups of at least ``min_runs`` queries, most savings first."""
        if len(queries) < self.min_runs:
            return []
        vectors = _unit_rows(self.embedder.embed([clip_prompt(q.query) for q in queries]))
        scores = vectors @ self.prerouter.prototypes().T
        window_days = _window_days(queries, now or datetime.now(UTC))
        document_frequency = Counter(word for q in queries for word in set(_words(q.query)))
        taken = set(self.taken_names)
        drafts = []
        for group in cluster(vectors, self.threshold):
            if len(group) < self.min_runs:
                break  # groups come largest first
            group_scores = scores[group]
            if group_scores.max(axis=1).mean() >= self.coverage_threshold:
                continue  # an existing specialist's task
            members = [queries[i] for i in group]
            name = _unique(_name(members, document_frequency, len(queries)), taken)
            taken.add(name)
            drafts.append(
                _draft(name, members, vectors[group], group_scores, self.prerouter, window_days)
            )
        return sorted(drafts, key=lambda d: (-d.monthly_savings_usd, d.name))


def _draft(
    name: str,
    members: list[LeadQuery],
    vectors: np.ndarray,
    scores: np.ndarray,
    prerouter: PreRouter,
    window_days: float,
) -> ProposalDraft:
    examples = [members[i].query for i in _representatives(vectors)]
    mean_scores = scores.mean(axis=0)
    nearest = int(np.argmax(mean_scores))
    lead_cost = float(sum(m.cost_usd for m in members))
    topic = name.replace("_", " ")
    return ProposalDraft(
        name=name,
        description=(
            f"Handles {topic} requests like {examples[0]!r}. Send the complete request in plain "
            "words. Returns the answer and a confidence in [0, 1]; check it before relying on it."
        ),
        examples=tuple(examples),
        run_ids=tuple(m.run_id for m in members),
        lead_cost_usd=lead_cost,
        window_days=window_days,
        monthly_savings_usd=lead_cost * MONTH_DAYS / window_days,
        validator=_validator(members),
        max_tokens=_answer_budget(members),
        nearest_specialist=prerouter.names[nearest],
        nearest_score=round(float(mean_scores[nearest]), 4),
    )


def _representatives(vectors: np.ndarray) -> list[int]:
    """Up to :data:`MAX_EXAMPLES` rows that are central to the group yet unlike each other
    (maximal marginal relevance): the most central first, then each next one trading
    closeness to the centre against similarity to those already picked. Near-copies of one
    request would tell the lead, and the pre-router's prototype, less than varied ones."""
    centrality = vectors @ vectors.mean(axis=0)
    similarity = vectors @ vectors.T
    picked = [int(np.argmax(centrality))]
    while len(picked) < min(MAX_EXAMPLES, len(vectors)):
        novelty = centrality - similarity[:, picked].max(axis=1)
        novelty[picked] = -np.inf
        best = int(np.argmax(novelty))
        if similarity[best, picked].max() > DUPLICATE_SIMILARITY:
            break  # only (near-)duplicates are left
        picked.append(best)
    return picked


def _answer_budget(members: Sequence[LeadQuery]) -> int:
    """Twice the longest answer the lead gave, in tokens (about four characters each), so the
    specialist has room to answer but a stuck one stops early."""
    longest = max(len(m.answer) for m in members) // CHARS_PER_TOKEN
    return min(MAX_ANSWER_TOKENS, max(MIN_ANSWER_TOKENS, 2 * longest))


def _validator(members: Sequence[LeadQuery]) -> str:
    """``python_function`` when the lead answered (nearly) all with code, else ``nonempty``."""
    passing = sum(python_function(m.answer).ok for m in members)
    return "python_function" if passing >= VALIDATOR_SHARE * len(members) else "nonempty"


def _name(members: Sequence[LeadQuery], document_frequency: Counter[str], total: int) -> str:
    """The group's most salient words: in most of its queries and few others (the share inside
    times how much it exceeds the share outside); ties alphabetical, so a group always gets the
    same name."""
    in_group = Counter(word for m in members for word in set(_words(m.query)))
    outside = total - len(members)

    def salience(word: str) -> float:
        share = in_group[word] / len(members)
        share_outside = (document_frequency[word] - in_group[word]) / outside if outside else 0.0
        return share * (share - share_outside)

    ranked = sorted(in_group, key=lambda word: (-salience(word), word))
    return "_".join(ranked[:NAME_WORDS]) or "task"


def _words(text: str) -> list[str]:
    return [w.strip("'") for w in _WORD.findall(text.lower()) if w.strip("'") not in STOPWORDS]


def _unique(name: str, taken: set[str]) -> str:
    candidate, suffix = name, 2
    while candidate in taken:
        candidate, suffix = f"{name}_{suffix}", suffix + 1
    return candidate


def _window_days(queries: Sequence[LeadQuery], now: datetime) -> float:
    oldest = min(q.created_at for q in queries)
    return max(MIN_WINDOW_DAYS, (now - oldest).total_seconds() / 86_400)


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def _last_user_message(messages: Sequence[dict]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return str(message.get("content") or "").strip()
    return ""


# ----------------------------------------------------------------- rounds: the store → the registry


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
    config: ProposalConfig,
    now: datetime | None = None,
    on_progress: Callable[[int, int], None] = lambda _scanned, _kept: None,
) -> list[Proposal]:
    """Recompute the open proposals from the newest lead-answered runs and store them.

    Args:
        base: The catalog without the registry (built-ins and settings overrides).
        config: The thresholds, the smallest task and how many runs are read.
    """
    queries = await recent_lead_queries(store, config.max_runs, on_progress=on_progress)
    snapshot = await registry.snapshot()
    known = known_catalog(base, snapshot)
    taken = set(known.names) | {
        p.name for p in await registry.list_proposals() if p.status != "open"
    }
    proposer = Proposer(
        embedder,
        PreRouter(known, embedder),
        threshold=config.cluster_threshold,
        coverage_threshold=config.coverage_threshold,
        min_runs=config.min_runs,
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
