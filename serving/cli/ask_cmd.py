"""``understudy ask``: one request through the orchestrator, in any mode."""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from orchestrator.modes import Mode
from serving.cli.output import console, err_console, log_to_stderr, print_json
from serving.settings import Settings, get_settings

if TYPE_CHECKING:
    from orchestrator.outcome import RunResult


class BackendChoice(StrEnum):
    local = "local"
    vllm = "vllm"


def ask(
    question: Annotated[str, typer.Argument(help="The request, in plain words.")],
    mode: Annotated[
        Mode | None,
        typer.Option(
            help="llm: lead alone · slm: a specialist alone · router: lead with specialists as "
            "tools · cascade: specialist first, lead when unsure. Default: cascade when a lead "
            "is configured, else slm."
        ),
    ] = None,
    specialist: Annotated[
        str | None,
        typer.Option(
            "--specialist", "-s", help="Use this specialist instead of the pre-router's choice."
        ),
    ] = None,
    backend: Annotated[
        BackendChoice | None, typer.Option(help="Override UNDERSTUDY_SLM_BACKEND for this call.")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option(min=1, max=4096, help="Cap on specialist answer tokens.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Answer a request and print the answer, route, confidence, tokens, cost and latency.

    Examples:

      understudy ask "Write a Python function that reverses a string." --specialist code

      understudy ask "What is 17 * 24?" --mode cascade --json
    """
    settings = get_settings()
    catalog = settings.catalog()
    if specialist:
        catalog.get(specialist)  # fail fast, listing the known specialists
    if max_tokens:
        catalog = catalog.with_overrides(
            {name: {"generation": {"max_tokens": max_tokens}} for name in catalog.names}
        )
    chosen = mode or (Mode.cascade if settings.lead.model or settings.lead.base_url else Mode.slm)
    result = asyncio.run(_run(settings, catalog, question, chosen, specialist, backend))
    if as_json:
        print_json(result.as_dict())
    else:
        _print_human(result)
    if result.answer is None:
        raise typer.Exit(1)


async def _run(settings: Settings, catalog, question, mode, specialist, backend) -> RunResult:
    from serving.orchestration import open_orchestrator  # loads the agents SDK: only when asked
    from serving.stores import open_database

    async with (
        await open_database(settings) as database,
        open_orchestrator(
            settings,
            database,
            catalog=catalog,
            backend=backend.value if backend else None,
            log=log_to_stderr,
        ) as orchestrator,
    ):
        return await orchestrator.run(question, mode, specialist=specialist)


def _print_human(result: RunResult) -> None:
    if result.answer is not None:
        console.print(result.answer, highlight=False, markup=False)
    confidence = "—" if result.confidence is None else f"{result.confidence:.2f}"
    flags = "".join(
        f" · {flag}"
        for flag, on in (("escalated", result.escalated), ("degraded", result.degraded))
        if on
    )
    console.print(
        f"[dim]{result.mode} · {result.route}{flags} · confidence {confidence} · "
        f"lead {result.lead_tokens} + slm {result.slm_tokens} tokens · "
        f"${result.cost_usd:.6f} (saved ${result.saved_usd:.6f}) · {result.latency_ms:.0f} ms · "
        f"run {result.run_id}[/]",
        highlight=False,
    )
    if result.error:
        err_console.print(result.error, style="yellow", highlight=False, markup=False)
