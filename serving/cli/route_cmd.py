"""``understudy route``: which specialist the pre-router picks for a prompt, without running one.

It is the cheap way to check a catalog change (new examples, a new specialist) or a threshold
before any model is loaded: only the small embedding model runs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Annotated, BinaryIO

import typer
from rich.markup import escape
from rich.table import Table

from orchestrator.prerouter import PreRouter, RouteDecision
from serving.cli.output import console, err_console, print_json
from serving.runtime import build_prerouter
from serving.settings import get_settings

BATCH_SIZE = 32
"""Prompts embedded together from a file: batching is several times faster than one by one, and
small enough that results still stream."""


class PromptLineError(ValueError):
    """A line of a prompts file that is not ``{"prompt": "<text>"}``."""

    def __init__(self, line: int, problem: str) -> None:
        self.line = line
        super().__init__(f"line {line}: {problem}")


def route(
    prompt: Annotated[
        str | None,
        typer.Argument(help="The request to route, in plain words. Leave out when using --file."),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            "-f",
            help='JSON Lines file with one {"prompt": "..."} per line ("-" reads stdin). '
            "Blank lines are skipped.",
            dir_okay=False,
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print JSON: one object for PROMPT, one object per line for --file.",
        ),
    ] = False,
) -> None:
    # The help text is ROUTE_HELP, attached below the function.
    if (prompt is None) == (file is None):
        raise typer.BadParameter("give exactly one of PROMPT or --file", param_hint="PROMPT")
    settings = get_settings()
    router = build_prerouter(settings)
    if prompt is not None:
        decision = router.route(prompt)
        if as_json:
            print_json(decision.as_dict())
        else:
            _print_decision(decision)
        return
    assert file is not None
    try:
        _route_file(router, file, as_json=as_json)
    except PromptLineError as exc:
        source = "stdin" if str(file) == "-" else str(file)
        err_console.print(f"[bold red]error:[/] {escape(source)}: {escape(str(exc))}")
        # SystemExit rather than typer.Exit(1): `understudy`'s main() runs the app with
        # standalone_mode=False, where an Exit's code is returned instead of exited with.
        raise SystemExit(1) from exc


# Typer's rich help keeps single line breaks, so each paragraph must be one line of text; the
# strings are concatenated to keep the source within 100 columns.
ROUTE_HELP = (
    "Show which specialist the pre-router would pick for a prompt, without running any model."
    "\n\n"
    "The pre-router embeds the prompt with a small sentence model (all-MiniLM-L6-v2) and scores "
    "each specialist by cosine similarity to its description and examples. The best score wins "
    'if it reaches the threshold; below it the choice is "none" and the lead answers itself.'
    "\n\n"
    "Tune it with UNDERSTUDY_ROUTER_THRESHOLD (higher keeps more prompts with the lead), "
    "UNDERSTUDY_ROUTER_EMBEDDING_MODEL, and the examples in UNDERSTUDY_SPECIALISTS."
    "\n\n"
    "With --file, results come out in input order, each with its line number. A line that is "
    'not {"prompt": "<text>"} stops the run with exit code 1, after the results of the lines '
    "before it."
    "\n\n"
    "Examples:"
    "\n\n"
    '  understudy route "A shop sells 12 pens at $3 each. What do they cost?"'
    "\n\n"
    '  understudy route "Write an email asking for Friday off" --json'
    "\n\n"
    "  understudy route --file prompts.jsonl --json > routes.jsonl"
)
route.__doc__ = ROUTE_HELP


def _route_file(router: PreRouter, file: Path, *, as_json: bool) -> None:
    """Route a prompts file in batches, printing each batch before reading on.

    A bad line raises :class:`PromptLineError` only after the valid lines before it are printed,
    so the output is always a complete prefix of the input.
    """
    batch: list[tuple[int, str]] = []
    with _open(file) as handle:
        try:
            for number, text in _prompts(handle):
                batch.append((number, text))
                if len(batch) == BATCH_SIZE:
                    _flush(router, batch, as_json=as_json)
        except PromptLineError:
            _flush(router, batch, as_json=as_json)
            raise
    _flush(router, batch, as_json=as_json)


def _open(file: Path) -> AbstractContextManager[BinaryIO]:
    """The file, or stdin for ``-`` (left open: it is not ours to close)."""
    if str(file) == "-":
        return nullcontext(sys.stdin.buffer)
    try:
        return file.open("rb")
    except OSError as exc:
        message = f"cannot read {file}: {exc.strerror}"
        raise typer.BadParameter(message, param_hint="--file") from exc


def _prompts(handle: BinaryIO) -> Iterator[tuple[int, str]]:
    """``(line number, prompt)`` for each non-blank line; a malformed line raises."""
    for number, raw in enumerate(handle, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise PromptLineError(number, "not UTF-8 text") from None
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PromptLineError(number, f"not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict) or "prompt" not in record:
            raise PromptLineError(number, 'expected an object like {"prompt": "<text>"}')
        if not isinstance(record["prompt"], str):
            kind = type(record["prompt"]).__name__
            raise PromptLineError(number, f'"prompt" must be a string, got {kind}')
        yield number, record["prompt"]


def _flush(router: PreRouter, batch: list[tuple[int, str]], *, as_json: bool) -> None:
    if not batch:
        return
    decisions = router.route_many([text for _, text in batch])
    for (number, text), decision in zip(batch, decisions, strict=True):
        if as_json:
            print_json({"line": number, **decision.as_dict()}, compact=True)
        else:
            _print_line(number, text, decision)
    sys.stdout.flush()
    batch.clear()


def _choice(decision: RouteDecision) -> str:
    if decision.specialist is not None:
        return f"[bold green]{decision.specialist}[/]"
    return f"[bold yellow]none[/] [dim](best: {decision.best})[/]"


def _print_decision(decision: RouteDecision) -> None:
    console.print(f"→ {_choice(decision)}", highlight=False)
    table = Table(show_edge=False, box=None, pad_edge=False)
    table.add_column("specialist")
    table.add_column("score", justify="right")
    table.add_column("")
    for name, score in sorted(decision.scores.items(), key=lambda item: -item[1]):
        mark = "≥ threshold" if score >= decision.threshold else ""
        table.add_row(name, f"{score:.4f}", f"[dim]{mark}[/]")
    console.print(table)
    console.print(f"[dim]threshold {decision.threshold:.2f}[/]", highlight=False)


def _print_line(number: int, text: str, decision: RouteDecision) -> None:
    excerpt = " ".join(text.split())
    excerpt = excerpt if len(excerpt) <= 60 else excerpt[:59] + "…"
    scores = " ".join(f"{name} {score:.2f}" for name, score in decision.scores.items())
    console.print(
        f"{number:>4}  {_choice(decision)}  [dim]{scores}[/]  {escape(excerpt)}",
        highlight=False,
        markup=True,
    )
