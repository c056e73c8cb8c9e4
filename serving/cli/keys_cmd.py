"""``understudy keys``: API keys for ``understudy serve``, kept hashed in the database."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from database.tables import MAX_REQUESTS_PER_MINUTE, MAX_TOKENS_PER_DAY
from serving.cli.output import console, err_console, print_json
from serving.keys import ApiKey, KeyStore
from serving.protocol import OnDegraded
from serving.settings import get_settings
from serving.stores import run_with_database

app = typer.Typer(
    help="Create, list and revoke API keys for the HTTP API (`understudy serve`).",
    no_args_is_help=True,
)

T = TypeVar("T")


def _with_keys(action: Callable[[KeyStore], Awaitable[T]]) -> T:
    return run_with_database(get_settings(), lambda database: action(KeyStore(database)))


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="A label for the key: who or what uses it.")],
    rpm: Annotated[
        int | None,
        typer.Option(
            "--rpm",
            min=0,
            max=MAX_REQUESTS_PER_MINUTE,
            help="Requests per minute, 0 for none (default: the api.default_* setting).",
        ),
    ] = None,
    tokens_per_day: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=MAX_TOKENS_PER_DAY,
            help="Tokens per UTC day, 0 for none (default: the api.default_* setting).",
        ),
    ] = None,
    admin: Annotated[
        bool,
        typer.Option(
            "--admin", help="The key sees every key's files and batches, not only its own."
        ),
    ] = False,
    on_degraded: Annotated[
        OnDegraded | None,
        typer.Option(
            "--on-degraded",
            help="What this key gets when a fallback answered: 'degrade' (the answer, marked) "
            "or 'error' (503). Default: the api.degraded setting; a request's own "
            "understudy.on_degraded overrides either.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Create a key and print it. It is shown this once: only its hash is stored."""
    defaults = get_settings().api
    rpm = defaults.default_requests_per_minute if rpm is None else rpm
    tokens_per_day = defaults.default_tokens_per_day if tokens_per_day is None else tokens_per_day
    try:
        key, plaintext = _with_keys(
            lambda store: store.create(
                name,
                requests_per_minute=rpm or None,
                tokens_per_day=tokens_per_day or None,
                admin=admin,
                on_degraded=on_degraded,
            )
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="NAME") from exc
    warning = "Save this key now: it cannot be shown again (only its hash is stored)."
    if as_json:
        print_json({**_public(key), "key": plaintext})
        err_console.print(f"[yellow]{warning}[/]")
        return
    console.print(plaintext, markup=False, highlight=False)
    err_console.print(
        f"[yellow]{warning}[/]\n[dim]id {key.id} · {key.name}{' · admin' if key.admin else ''}"
        f" · {_limits(key)} · on degraded: {_on_degraded(key)}[/]",
        highlight=False,
    )


@app.command("list")
def list_keys(
    show_all: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List keys by id, name and prefix (never the keys themselves), oldest first."""
    keys = _with_keys(lambda store: store.list(include_revoked=show_all))
    if as_json:
        for key in keys:
            print_json(_public(key), compact=True)
        return
    table = Table("id", "name", "prefix", "created", "limits", "admin", "on degraded", "status")
    for key in keys:
        table.add_row(
            key.id,
            key.name,
            f"{key.prefix}…",
            _when(key.created_at),
            _limits(key),
            "yes" if key.admin else "",
            _on_degraded(key),
            f"revoked {_when(key.revoked_at)}" if key.revoked_at else "active",
        )
    console.print(table)


@app.command("revoke")
def revoke(
    key_id_or_prefix: Annotated[
        str, typer.Argument(help="The key's id, or enough of its prefix to name one key.")
    ],
) -> None:
    """Revoke a key at once, for every server process; this cannot be undone."""
    key = _with_keys(lambda store: store.revoke(key_id_or_prefix))
    console.print(
        f"revoked {key.id} ({key.name}, {key.prefix}…) at {_when(key.revoked_at)}",
        markup=False,
        highlight=False,
    )


def _public(key: ApiKey) -> dict[str, Any]:
    return dataclasses.asdict(key)


def _limits(key: ApiKey) -> str:
    rpm = "∞" if key.requests_per_minute is None else str(key.requests_per_minute)
    tokens = "∞" if key.tokens_per_day is None else f"{key.tokens_per_day:,}"
    return f"{rpm} req/min, {tokens} tokens/day"


def _on_degraded(key: ApiKey) -> str:
    return key.on_degraded.value if key.on_degraded else "(server setting)"


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")
