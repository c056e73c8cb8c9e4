"""``understudy specialists pause|resume|events``: stopping a specialist without retiring
it, and the registry's history (every promotion, canary, demotion, threshold, pause)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from database import Database
from distill.catalog import known_specialist
from distill.registry import RegistryEvent, RegistryStore
from serving.cli.output import console, print_json
from serving.settings import get_settings
from serving.stores import run_with_database

NameArgument = Annotated[str, typer.Argument(help="The specialist, e.g. math.")]


def pause(
    name: NameArgument,
    reason: Annotated[
        str, typer.Option("--reason", help="Why, for the event log.")
    ] = "paused by an operator",
) -> None:
    """Stop a specialist from answering without retiring any version: no tool for the lead,
    no pre-router route, and requests naming it are refused; the lead answers its traffic.
    Built-in specialists can be paused too. Running servers follow within a poll."""
    settings = get_settings()

    async def run(database: Database) -> None:
        await known_specialist(database, settings.catalog(), name)
        await RegistryStore(database).pause(name, reason=reason, actor="cli")

    run_with_database(settings, run)
    console.print(
        f"{name} is paused; `understudy specialists resume {name}` lets it answer again",
        highlight=False,
    )


def resume(name: NameArgument) -> None:
    """Let a paused specialist answer again, as its versions say."""
    settings = get_settings()
    run_with_database(settings, lambda database: RegistryStore(database).resume(name, actor="cli"))
    console.print(f"{name} is no longer paused", highlight=False)


def events(
    name: Annotated[str | None, typer.Argument(help="Only this specialist's events.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Newest N.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The registry's history, newest first: what changed, for which version, why, on which
    figures, and who decided (an operator through the CLI, the worker, a distillation job)."""
    settings = get_settings()
    found: list[RegistryEvent] = run_with_database(
        settings, lambda database: RegistryStore(database).events(name, limit)
    )
    if as_json:
        print_json([asdict(event) for event in found])
        return
    table = Table("when", "specialist", "event", "version", "actor", "reason", "figures")
    for event in found:
        table.add_row(
            event.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            event.specialist,
            event.kind.value,
            "-" if event.version_id is None else str(event.version_id),
            event.actor,
            event.reason,
            ", ".join(f"{key}={value}" for key, value in event.figures.items()),
        )
    console.print(table)
