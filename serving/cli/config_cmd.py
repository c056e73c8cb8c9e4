"""``understudy config``: inspect the effective settings."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from serving.cli.output import console, print_json
from serving.settings import get_settings

app = typer.Typer(
    help="Inspect settings (environment UNDERSTUDY_*, then .env).", no_args_is_help=True
)


@app.command("show")
def show(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Print the effective settings, secrets masked."""
    data = get_settings().public_dict()
    if as_json:
        print_json(data)
        return
    table = Table("setting", "value", title="Understudy settings")
    for key, value in _flatten(data):
        table.add_row(key, "" if value is None else str(value))
    console.print(table)


def _flatten(data: dict[str, Any], prefix: str = "UNDERSTUDY_") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key.upper()}"
        if isinstance(value, dict) and key != "specialists":
            rows += _flatten(value, f"{name}_")
        else:
            rows.append((name, value))
    return rows
