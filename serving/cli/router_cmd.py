"""``understudy router …``: train, list, promote and roll back the learned pre-router.

``train`` fits a classifier on the seed data (``distill/prerouter/seed.py``: public sets read from
``UNDERSTUDY_DATA_DIR``, our own requests, the catalog) and the lead's routing read from the
transcripts, gates it on held-out prompts against the active version and registers it (promoted
with ``--promote`` when it passes). ``distill-embedding`` builds the static embedding the fast
path uses (``train`` builds it when it is missing).
"""

from __future__ import annotations

from typing import Annotated

import typer

from database import Database
from distill.prerouter.retrain import Examples, gather_examples
from distill.prerouter.training import train_and_register
from distill.prerouter.versions import RouterVersions
from evals.data import DataSource
from orchestrator.prerouter import MiniLMEmbedder
from orchestrator.prerouter_static import STATIC_DIR, distill_static_table
from orchestrator.transcripts import TranscriptStore
from serving.cli.output import console, print_json
from serving.runtime import router_embedder, static_table_ready
from serving.settings import Settings, get_settings
from serving.stores import run_with_database
from specialists.errors import ConfigurationError

app = typer.Typer(help="The learned pre-router: train, list, promote, roll back.")


def _versions(settings: Settings) -> RouterVersions:
    return RouterVersions(settings.prerouter_dir)


@app.command("distill-embedding")
def distill_embedding() -> None:
    """Build the static embedding (MiniLM's vocabulary, once; about a minute on 2 cores)."""
    settings = get_settings()
    table_hash = distill_static_table(
        MiniLMEmbedder(settings.router.embedding_model), settings.prerouter_dir / STATIC_DIR
    )
    console.print(f"static embedding {table_hash} in {settings.prerouter_dir / STATIC_DIR}")


async def _examples(settings: Settings, database: Database) -> Examples:
    return await gather_examples(
        data_source(settings), settings.catalog(), TranscriptStore(database)
    )


def data_source(settings: Settings) -> DataSource:
    """The seed data's source: ``UNDERSTUDY_DATA_DIR``, which training cannot do without."""
    if settings.data_dir is None or not settings.data_dir.is_dir():
        raise ConfigurationError(
            f"training the pre-router reads its seed data from UNDERSTUDY_DATA_DIR "
            f"({settings.data_dir}), which is not a directory. Fix: set it to the data sets"
        )
    return DataSource(settings.data_dir)


EMBEDDERS = ("two-stage", "minilm", "static")


@app.command("train")
def train(
    embedder: Annotated[
        str,
        typer.Option(
            help="two-stage (default: the static embedding decides where it is sure, ~0.3 ms, "
            "MiniLM the rest, with MiniLM's accuracy), minilm (every decision ~20 ms) or "
            "static (~0.2 ms, lower precision); see benchmarks/prerouter.py"
        ),
    ] = "two-stage",
    promote: Annotated[
        bool, typer.Option("--promote", help="Promote the new version if it passes the gate")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Train a pre-router on seed data and transcripts, gate it, register it; with enough
    cascade transcripts the version also carries cascade's difficulty skip (the knob:
    understudy.lead_share or model understudy-cascade-0.3)."""
    if embedder not in EMBEDDERS:
        raise typer.BadParameter(
            f"--embedder must be one of {', '.join(EMBEDDERS)}, not {embedder!r}"
        )
    settings = get_settings()
    static = embedder == "static"
    if embedder != "minilm" and not static_table_ready(settings):
        distill_embedding()
    examples = run_with_database(settings, lambda database: _examples(settings, database))
    outcome = train_and_register(
        examples.train,
        examples.held_out,
        catalog=settings.catalog(),
        embedder=router_embedder(settings, static=static),
        versions=_versions(settings),
        promote=promote,
        transcript_labels=examples.transcript_labels,
        outcomes=examples.outcomes,
        fast_embedder=router_embedder(settings, static=True) if embedder == "two-stage" else None,
    )
    if as_json:
        print_json(
            {
                "version": outcome.version.version,
                "promoted": outcome.promoted,
                "gate": outcome.gate.as_dict(),
                "counts": outcome.model.counts,
                "difficulty": outcome.difficulty.gate,
            }
        )
        return
    console.print(
        f"version {outcome.version.version} ({outcome.version.hash}) trained on "
        f"{len(examples.train)} examples {outcome.model.counts}; thresholds "
        f"{ {k: round(v, 3) for k, v in outcome.model.thresholds.items()} }"
    )
    if outcome.unlearned:
        console.print(f"not routed to yet (too few examples): {', '.join(outcome.unlearned)}")
    if outcome.version.cut is not None:
        console.print(f"two-stage: the static classifier decides from p ≥ {outcome.version.cut}")
    elif embedder == "two-stage":
        console.print("two-stage: no cut keeps MiniLM's accuracy; MiniLM decides every prompt")
    console.print("gate on held-out prompts: " + outcome.gate.reason)
    for line in outcome.gate.candidate.lines():
        console.print(line, markup=False)
    verdict = "promoted" if outcome.promoted else ("passed" if outcome.gate.passed else "refused")
    console.print(f"gate {verdict}")
    skip = "with" if outcome.difficulty.model else "without"
    console.print(f"{skip} cascade's difficulty skip: {outcome.difficulty.gate['reason']}")


@app.command("list")
def list_versions(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every registered version, oldest first."""
    versions = _versions(get_settings()).list()
    if as_json:
        print_json(
            [
                {
                    "version": v.version,
                    "hash": v.hash,
                    "status": v.status,
                    "embedder": v.embedder,
                    "created_at": v.created_at,
                    "transcript_labels": v.transcript_labels,
                    "gate_passed": v.gate.get("passed"),
                    "difficulty": v.difficulty_hash is not None,
                    "two_stage_cut": v.cut,
                    "difficulty_labels": v.difficulty_labels,
                }
                for v in versions
            ]
        )
        return
    for v in versions:
        console.print(
            f"v{v.version}  {v.status:9}  {v.hash}  {v.embedder}  labels {v.transcript_labels}  "
            f"gate {'passed' if v.gate.get('passed') else 'refused'}  "
            f"difficulty skip {'yes' if v.difficulty_hash else 'no'}  "
            f"two-stage {'cut ' + str(v.cut) if v.cut is not None else 'no'}  {v.created_at}"
        )


@app.command("promote")
def promote_version(version: Annotated[int, typer.Argument(help="The version number")]) -> None:
    """Make VERSION the active pre-router (serving processes pick it up at start)."""
    entry = _versions(get_settings()).promote(version)
    console.print(f"v{entry.version} ({entry.hash}) is active")


@app.command("rollback")
def rollback() -> None:
    """Re-activate the previously active version."""
    entry = _versions(get_settings()).rollback()
    console.print(f"rolled back: v{entry.version} ({entry.hash}) is active")
