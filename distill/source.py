"""Feed distillation from the transcript store: runs and their feedback → ``Transcript``.

The dataset builder reads plain :class:`~distill.transcripts.Transcript` records, not the
store's; the conversion lives here. Only runs a dataset can use are read whole: summaries are
scanned page by page, and a run's tool calls and feedback are fetched only when it consulted the
specialist (or is one of the chosen runs).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import replace

from distill.transcripts import Transcript
from orchestrator.transcripts import FeedbackRecord, RunNotFound, RunRecord, TranscriptStore
from specialists.catalog import Catalog

PAGE_SIZE = 500


def to_transcript(
    run: RunRecord, feedback: Sequence[FeedbackRecord], tool_specialists: dict[str, str]
) -> Transcript:
    """``run`` (read with its tool calls) and its feedback as a :class:`Transcript`.

    Args:
        tool_specialists: Tool name → specialist name (see :func:`tool_specialists`).
    """
    return Transcript(
        run_id=run.run_id,
        created_at=run.created_at,
        input_messages=tuple(run.input_messages),
        # A run that handed the app's tool calls over did not answer: its text (what the lead
        # said beside them) is no answer to learn from.
        answer=None if run.app_tool_calls else run.answer,
        route=run.route,
        specialists=tuple(run.specialists),
        escalated=run.escalated,
        degraded=run.degraded,
        error=run.error,
        tool_calls=tuple(
            # Runs recorded before tool calls kept their specialist: named through the catalog.
            replace(call, specialist=call.specialist or tool_specialists.get(call.name))
            for call in run.tool_calls
        ),
        feedback=tuple(record.score for record in feedback),
    )


def tool_specialists(catalog: Catalog) -> dict[str, str]:
    """Which specialist each specialist tool name stands for, as the lead's tools name them."""
    from tools.function_tools import specialist_tool_name  # the agents SDK: only when needed

    return {specialist_tool_name(specialist): specialist.name for specialist in catalog}


async def read_transcripts(
    store: TranscriptStore,
    catalog: Catalog,
    *,
    specialist: str | None = None,
    run_ids: Collection[str] | None = None,
    max_runs: int,
    on_progress: Callable[[int, int], None] = lambda _scanned, _selected: None,
) -> list[Transcript]:
    """The transcripts a dataset may use: runs that consulted ``specialist``, or ``run_ids``.

    Args:
        max_runs: Most runs scanned, newest first (or chosen runs read).
        on_progress: Called with (runs scanned, transcripts selected) as reading goes on.

    Raises:
        ValueError: Neither or both of ``specialist`` and ``run_ids`` are given.
        StoreError: The database failed.
    """
    if (specialist is None) == (run_ids is None):
        raise ValueError("give exactly one of specialist and run_ids")
    names = tool_specialists(catalog)
    transcripts: list[Transcript] = []
    if run_ids is not None:
        for run_id in sorted(run_ids)[:max_runs]:
            try:
                transcripts.append(await _read_one(store, run_id, names))
            except RunNotFound:
                continue  # deleted since it was chosen: nothing to learn from
            on_progress(len(transcripts), len(transcripts))
        return transcripts
    seen: set[str] = set()
    """Runs recorded while we scan push older ones to later pages: read none twice."""
    scanned = 0
    while scanned < max_runs:
        page = await store.list_runs(limit=min(PAGE_SIZE, max_runs - scanned), offset=scanned)
        if not page:
            break
        scanned += len(page)
        for summary in page:
            if specialist in summary.specialists and summary.run_id not in seen:
                seen.add(summary.run_id)
                transcripts.append(await _read_one(store, summary.run_id, names))
        on_progress(scanned, len(transcripts))
    return transcripts


async def _read_one(store: TranscriptStore, run_id: str, names: dict[str, str]) -> Transcript:
    run = await store.get_run(run_id)
    return to_transcript(run, await store.feedback_for(run_id), names)
