"""Routing labels from the product's own transcripts: the pre-router distils the lead's routing.

Which runs say what (read from run summaries, no lead or tool calls needed):

* ``router`` runs, ``cascade:lead`` runs (the pre-router said none and the lead answered
  with its tools) and ``cascade:skipped:<s>`` runs (the difficulty skip sent it to the lead):
  the lead chose. One specialist consulted → that specialist; none → ``none``;
  several → no label (the request spans kinds).
* ``cascade:accepted:<s>``: the specialist's answer was good enough → ``<s>``.
* ``cascade:escalated:<s>``: no label. The escalation says the answer was weak, not that the
  request was of another kind, and the lead that stood in was handed the draft, so its own
  choice is not independent either; counting it as ``none`` would teach the router to keep
  exactly the requests the specialist is being distilled to learn.
* failed or degraded runs, and runs that handed the app's tool calls over: no label.
"""

from __future__ import annotations

from collections.abc import Sequence

from distill.prerouter.seed import Labelled
from orchestrator.prerouter_model import NONE
from orchestrator.transcripts import RunRecord, TranscriptStore

PAGE_SIZE = 500
SOURCE = "transcripts"


def prompt_of(run: RunRecord) -> str | None:
    """The text the pre-router routes for this run: its last message's, when it is text."""
    if not run.input_messages:
        return None
    content = run.input_messages[-1].get("content")
    return content if isinstance(content, str) and content.strip() else None


def label_of(run: RunRecord) -> str | None:
    """The routing label ``run`` teaches (see the module's docstring), or ``None``."""
    if run.failure is not None or run.degraded or run.app_tool_calls:
        return None
    parts = run.route.split(":")
    if run.mode == "router" or parts == ["cascade", "lead"] or parts[:2] == ["cascade", "skipped"]:
        consulted = list(dict.fromkeys(run.specialists))
        if len(consulted) > 1:
            return None
        return consulted[0] if consulted else NONE
    if parts[:2] == ["cascade", "accepted"] and len(parts) == 3:
        return parts[2]
    return None


def run_labels(runs: Sequence[RunRecord], known: Sequence[str]) -> list[Labelled]:
    """The labelled prompts ``runs`` give; specialists not in ``known`` (retired) are dropped."""
    labelled = []
    for run in runs:
        label, prompt = label_of(run), prompt_of(run)
        if label is None or prompt is None or (label != NONE and label not in known):
            continue
        labelled.append(Labelled(prompt, label, SOURCE))
    return labelled


async def recent_runs(store: TranscriptStore, *, max_runs: int) -> list[RunRecord]:
    """The newest ``max_runs`` router and the newest ``max_runs`` cascade runs, oldest first."""
    runs: list[RunRecord] = []
    for mode in ("router", "cascade"):
        offset = 0
        while offset < max_runs:
            page = await store.list_runs(
                limit=min(PAGE_SIZE, max_runs - offset), offset=offset, mode=mode
            )
            runs += page
            offset += len(page)
            if len(page) < PAGE_SIZE:
                break
    runs.sort(key=lambda run: run.created_at)
    return runs


def latest_labels(runs: Sequence[RunRecord], known: Sequence[str]) -> list[Labelled]:
    """The labels ``runs`` (oldest first) give, the latest one per prompt."""
    return list({item.prompt: item for item in run_labels(runs, known)}.values())


async def transcript_labels(
    store: TranscriptStore, known: Sequence[str], *, max_runs: int
) -> list[Labelled]:
    """Labels from the newest ``max_runs`` router and cascade runs (latest label per prompt)."""
    return latest_labels(await recent_runs(store, max_runs=max_runs), known)
