"""The ``understudy`` command: one Typer app with a sub-app per area, each in its own module."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from serving.cli import (
    ask_cmd,
    batch_cmd,
    config_cmd,
    distill_cmd,
    doctor_cmd,
    eval_cmd,
    keys_cmd,
    models_cmd,
    route_cmd,
    router_cmd,
    runs_cmd,
    serve_cmd,
    slm_cmd,
    specialists_cmd,
    worker_cmd,
)
from serving.cli.output import err_console
from specialists.errors import UnderstudyError

app = typer.Typer(
    name="understudy",
    help=(
        "A lead LLM that delegates to small specialist models, and distils its own work into "
        'new ones.\n\nStart with `understudy ask "What is 17*24?" --specialist math`; '
        "`understudy config show` prints every setting."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(config_cmd.app, name="config")
app.add_typer(models_cmd.app, name="models")
app.add_typer(slm_cmd.app, name="slm")
app.add_typer(runs_cmd.app, name="runs")
app.add_typer(keys_cmd.app, name="keys")
app.add_typer(batch_cmd.app, name="batch")
app.add_typer(eval_cmd.app, name="eval")
app.add_typer(distill_cmd.app, name="distill")
app.add_typer(specialists_cmd.app, name="specialists")
app.command("ask")(ask_cmd.ask)
app.command("route")(route_cmd.route)
app.add_typer(router_cmd.app, name="router")
app.command("serve")(serve_cmd.serve)
app.command("worker")(worker_cmd.worker)
app.command("doctor")(doctor_cmd.doctor)


def main() -> None:
    """Console entry point: product errors become one clear line and exit code 1.

    Typer's standalone mode keeps handling usage errors, ``--help`` and exit codes; only our own
    errors are caught here, so users never see a traceback for a misconfiguration.
    """
    try:
        app()
    except UnderstudyError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(1)
