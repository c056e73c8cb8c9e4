"""``understudy eval router``: routers evaluated offline on RouteLLM's strong/weak labels.

No model answers anything: the labels already say how a strong model (GPT-4-1106) and a weak one
(Mixtral-8x7B) did on each prompt, so a router is judged by which prompts it would send to the
strong model. The CLI only assembles: settings become the labels directory and the embedder;
:mod:`evals.router_eval` scores, sweeps and summarises.
"""

from __future__ import annotations

import enum
import importlib.util
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from evals.errors import MissingExtraError
from evals.router_eval import (
    DEFAULT_FOLDS,
    RANDOM_PASSES,
    CachedEmbedder,
    EmbeddingProgress,
    Evaluation,
    LabelSet,
    OracleRouter,
    RandomRouter,
    evaluate_router,
    load_labels,
)
from serving.cli.output import console, err_console, log_to_stderr, print_json
from serving.settings import Settings, get_settings
from specialists.errors import ConfigurationError

if TYPE_CHECKING:
    from evals.router_eval import Router

LABELS_SUBDIR = "routellm_evals"
"""Where the labels sit under ``UNDERSTUDY_DATA_DIR``."""


class RouterChoice(enum.StrEnum):
    random = "random"
    difficulty = "difficulty"
    oracle = "oracle"


def router(
    labels: Annotated[
        LabelSet,
        typer.Option(
            "--labels",
            help="routellm-gsm8k: right/wrong per GSM8K question (1,307 after decontamination); "
            "routellm-mt-bench: GPT-4 judge scores per MT-Bench question (72); "
            "routellm-mmlu: right/wrong per MMLU question, every mmlu/responses/mmlu_*.csv "
            "(14,037 of 57 subjects after decontamination).",
        ),
    ] = LabelSet.gsm8k,
    routers: Annotated[
        list[RouterChoice] | None,
        typer.Option(
            "--router",
            "-r",
            help="Router to evaluate; repeat for several. random: the baseline (mean of "
            "--random-passes passes); difficulty: ours, a cross-validated difficulty scorer; "
            "oracle: knows the labels (the ceiling). Default: all three.",
        ),
    ] = None,
    labels_dir: Annotated[
        Path | None,
        typer.Option(
            "--labels-dir",
            file_okay=False,
            help="RouteLLM's routellm/evals folder (or a copy). Default: "
            "$UNDERSTUDY_DATA_DIR/routellm_evals.",
        ),
    ] = None,
    folds: Annotated[
        int, typer.Option(min=2, max=20, help="Cross-validation folds of the difficulty router.")
    ] = DEFAULT_FOLDS,
    seed: Annotated[
        int, typer.Option(help="Seeds the folds and the random router (pass i: seed + i).")
    ] = 0,
    random_passes: Annotated[
        int, typer.Option(min=1, max=1000, help="Random-router passes averaged (RouteLLM: 10).")
    ] = RANDOM_PASSES,
    embedding_model: Annotated[
        str | None,
        typer.Option(
            help="Sentence-embedding model of the difficulty router. Default: the pre-router's "
            "(UNDERSTUDY_ROUTER_EMBEDDING_MODEL, else the bundled all-MiniLM-L6-v2)."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the results (curves included) as JSON.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            help="Also write router-<labels>.json and, with matplotlib installed, "
            "router-<labels>.png (quality vs % strong calls) into this directory.",
        ),
    ] = None,
) -> None:
    # The help text is ROUTER_HELP, attached below the function.
    settings = get_settings()
    label_set = load_labels(labels, _labels_dir(settings, labels_dir))
    evaluate_with = dict.fromkeys(routers or list(RouterChoice))  # in order, once each
    results = []
    with _embedding_progress() as on_progress:
        for choice in evaluate_with:
            scorer = _build(
                choice,
                settings,
                folds=folds,
                passes=random_passes,
                model=embedding_model,
                on_progress=on_progress,
            )
            log_to_stderr(f"{scorer.name}: scoring {len(label_set):,} prompts")
            results.append(evaluate_router(scorer, label_set, seed=seed))
    evaluation = Evaluation(labels=label_set, results=results, seed=seed)
    if out is not None:
        _write(evaluation, out.expanduser().resolve())
    if as_json:
        print_json(evaluation.as_dict())
    else:
        _print_table(evaluation)


# Typer's rich help keeps single line breaks, so each paragraph must be one line of text; the
# strings are concatenated to keep the source within 100 columns.
ROUTER_HELP = (
    "Evaluate routers offline on RouteLLM's per-prompt strong/weak labels."
    "\n\n"
    "No model runs: the labels say how a strong model (GPT-4-1106) and a weak one (Mixtral-8x7B) "
    "did on each prompt. A router scores each prompt (higher: needs the strong model); "
    "thresholds at the deciles of the scores give a curve of quality against the share of "
    "strong calls, summarised as RouteLLM does. CPT(50 %) and CPT(80 %): the % of strong calls "
    "needed to recover half and 80 % of the gap between the weak and the strong model (lower "
    "is better). APGR: the average share of that gap recovered along the curve (random about "
    "0.5, higher is better). Prompts RouteLLM flags as contaminated are left out."
    "\n\n"
    "The difficulty router embeds each prompt once (cached under $UNDERSTUDY_HOME/cache) and is "
    "trained and scored by k-fold cross-validation: no prompt is scored by a model that saw it."
    "\n\n"
    "Examples:"
    "\n\n"
    "  understudy eval router"
    "\n\n"
    "  understudy eval router --labels routellm-mt-bench -r random -r difficulty --json"
    "\n\n"
    "  understudy eval router --labels routellm-mmlu --labels-dir RouteLLM/routellm/evals"
    "\n\n"
    "  understudy eval router --out reports/router"
)
router.__doc__ = ROUTER_HELP


def _labels_dir(settings: Settings, given: Path | None) -> Path:
    if given is not None:
        return given.expanduser().resolve()
    if settings.data_dir is None:
        raise ConfigurationError(
            "no labels directory: pass --labels-dir (RouteLLM's routellm/evals folder)",
            setting="UNDERSTUDY_DATA_DIR",
        )
    return settings.data_dir / LABELS_SUBDIR


def _build(
    choice: RouterChoice,
    settings: Settings,
    *,
    folds: int,
    passes: int,
    model: str | None,
    on_progress: EmbeddingProgress,
) -> Router:
    if choice is RouterChoice.random:
        return RandomRouter(passes=passes)
    if choice is RouterChoice.oracle:
        return OracleRouter()
    try:  # scikit-learn: in the eval extra (and pulled in by sentence-transformers)
        from evals.router_eval.difficulty import DifficultyRouter
    except ImportError as exc:
        raise MissingExtraError("scikit-learn", "the difficulty router") from exc
    from orchestrator.prerouter import MiniLMEmbedder

    inner = MiniLMEmbedder(model or settings.router.embedding_model)
    embedder = CachedEmbedder(
        inner,
        model_ref=inner.model_ref,
        cache_dir=settings.home / "cache" / "embeddings",
        on_progress=on_progress,
    )
    return DifficultyRouter(embedder, folds=folds)


@contextmanager
def _embedding_progress() -> Iterator[EmbeddingProgress]:
    """A bar on stderr that appears only when prompts are embedded (not on a cache hit)."""
    bars = Progress(
        TextColumn("embedding prompts"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )

    def advance(done: int, total: int) -> None:
        if not bars.task_ids:
            bars.start()
            bars.add_task("", total=total)
        bars.update(bars.task_ids[0], completed=done, total=total)

    try:
        yield advance
    finally:
        if bars.task_ids:  # started: stopping an unstarted bar still prints a newline
            bars.stop()


def _write(evaluation: Evaluation, directory: Path) -> None:
    """results JSON, and the plot when matplotlib is installed (it is in the ``eval`` extra)."""
    stem = f"router-{evaluation.labels.name}"
    results = directory / f"{stem}.json"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(evaluation.as_dict(), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        problem = f"cannot write {results}: {exc.strerror}"
        raise ConfigurationError(problem, setting="--out") from exc
    log_to_stderr(f"results: {results}")
    if importlib.util.find_spec("matplotlib") is None:
        log_to_stderr("no plot: matplotlib is not installed (pip install 'understudy[eval]')")
        return
    from evals.router_eval.plot import plot_curves

    log_to_stderr(f"plot: {plot_curves(evaluation, directory / f'{stem}.png')}")


def _print_table(evaluation: Evaluation) -> None:
    labels = evaluation.labels
    console.print(
        f"[bold]{labels.name}[/]: {len(labels):,} prompts ({labels.excluded} contaminated left "
        f"out) · {labels.unit}: weak {labels.weak_quality:.2f} ({labels.weak_model}), "
        f"strong {labels.strong_quality:.2f} ({labels.strong_model})",
        highlight=False,
    )
    table = Table("router", "CPT(50 %)", "CPT(80 %)", "APGR", "passes")
    for result in evaluation.results:
        metrics = result.metrics
        table.add_row(
            result.name,
            f"{metrics.cpt[0.5]:.2f} %",
            f"{metrics.cpt[0.8]:.2f} %",
            f"{metrics.apgr:.3f}",
            str(result.passes),
        )
    console.print(table)
    console.print(
        "[dim]CPT(x %): strong calls needed to recover x % of the weak→strong gap (lower is "
        "better). APGR: average share of the gap recovered (random ≈ 0.5, higher is better).[/]",
        highlight=False,
    )
