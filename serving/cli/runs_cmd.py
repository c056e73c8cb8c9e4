"""``understudy runs``: read the transcript store."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from orchestrator.transcripts import RunRecord, TranscriptStore
from serving.cli.output import console, print_json
from serving.settings import get_settings
from serving.stores import run_with_database

app = typer.Typer(help="Inspect recorded runs (transcripts).", no_args_is_help=True)
T = TypeVar("T")


def _with_store(action: Callable[[TranscriptStore], Awaitable[T]]) -> T:
    return run_with_database(get_settings(), lambda database: action(TranscriptStore(database)))


@app.command("list")
def list_runs(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 20,
    mode: Annotated[str | None, typer.Option(help="Only runs of this mode.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List recent runs: mode, route, tokens, cost, latency."""
    runs = _with_store(lambda store: store.list_runs(limit=limit, mode=mode))
    if as_json:
        for run in runs:
            print_json(_as_json(run, with_calls=False), compact=True)
        return
    table = Table(
        "run", "continues", "when", "mode", "route", "lead tok", "slm tok", "cost $", "ms", "status"
    )
    for run in runs:
        status = "degraded" if run.degraded else ("error" if run.error else "ok")
        table.add_row(
            run.run_id,
            run.continues_run_id or "",
            run.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            run.mode,
            run.route,
            str(run.lead_input_tokens + run.lead_output_tokens),
            str(run.slm_prompt_tokens + run.slm_completion_tokens),
            f"{run.cost_usd:.6f}",
            f"{run.latency_ms:.0f}",
            status,
        )
    console.print(table)


@app.command("show")
def show(
    run_id: Annotated[str, typer.Argument(help="The run id (from `runs list` or `ask --json`).")],
    as_json: Annotated[bool, typer.Option("--json", help="The whole transcript as JSON.")] = False,
) -> None:
    """Show one run's full transcript: input, lead calls, tool calls, answer, totals — and the
    runs of the same tool conversation before and after it."""
    run, continued_by = _with_store(lambda store: _run_and_continuations(store, run_id))
    if as_json:
        print_json({**_as_json(run, with_calls=True), "continued_by": continued_by})
        return
    console.print(
        f"[bold]run {run.run_id}[/] · {run.mode} · {run.route} · {run.created_at:%Y-%m-%d %H:%M:%S}"
    )
    if run.continues_run_id:
        console.print(f"continues run {run.continues_run_id}", markup=False)
    for message in run.input_messages:
        _print_message(message)
    for index, lead_call in enumerate(run.lead_calls, 1):
        console.print(
            f"[magenta]lead call {index}[/] {lead_call.model} · "
            f"{lead_call.input_tokens}+{lead_call.output_tokens} tokens · "
            f"${lead_call.cost_usd:.6f} · {lead_call.latency_ms:.0f} ms"
            + (f" · error: {lead_call.error}" if lead_call.error else "")
        )
    for tool_call in run.tool_calls:
        confidence = (
            "" if tool_call.confidence is None else f" · confidence {tool_call.confidence:.2f}"
        )
        console.print(
            f"[green]tool {tool_call.name}[/]{confidence} · {tool_call.latency_ms:.0f} ms", end=""
        )
        console.print(f" · error: {tool_call.error}" if tool_call.error else "", markup=False)
        console.print(
            f"  in:  {tool_call.input}\n  out: {tool_call.output[:500]}",
            markup=False,
            highlight=False,
        )
    console.print(f"[bold]answer[/] (finish_reason {run.finish_reason}):")
    if run.app_tool_calls:
        calls = {"role": "assistant", "content": run.answer or "", "tool_calls": run.app_tool_calls}
        _print_message(calls)
    else:
        console.print(run.answer or "(none)", markup=False, highlight=False)
    if run.error:
        console.print(run.error, style="yellow", markup=False, highlight=False)
    console.print(
        f"[dim]cost ${run.cost_usd:.6f} · lead-only ${run.lead_only_cost_usd:.6f} · "
        f"{run.latency_ms:.0f} ms[/]"
    )
    for later in continued_by:
        console.print(f"continued by run {later}", markup=False)


async def _run_and_continuations(
    store: TranscriptStore, run_id: str
) -> tuple[RunRecord, list[str]]:
    return await store.get_run(run_id), await store.continuations(run_id)


def _print_message(message: Mapping[str, Any]) -> None:
    """One message of a history: its text, its tool calls, or the call a tool result answers."""
    answers = f" ({message['tool_call_id']})" if message.get("tool_call_id") else ""
    console.print(f"[cyan]{message['role']}{answers}:[/] ", end="")
    console.print(message["content"], markup=False, highlight=False)
    for call in message.get("tool_calls") or ():
        console.print(
            f"  → {call['name']}({call['arguments']}) [{call['id']}]", markup=False, highlight=False
        )


def _as_json(run: RunRecord, *, with_calls: bool) -> dict[str, Any]:
    """The run as this command's JSON has always shown it: ``id``, and ``error`` (the failure's
    message) next to the typed ``failure``."""
    data = {"id": run.run_id, **dataclasses.asdict(run), "error": run.error}
    del data["run_id"]
    if not with_calls:
        del data["lead_calls"], data["tool_calls"]
    return data
