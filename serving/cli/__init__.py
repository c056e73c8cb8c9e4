"""The ``understudy`` command: one Typer app with a sub-app per area, each in its own module."""

from __future__ import annotations

import sys

import typer

from serving.cli import ask_cmd, config_cmd, models_cmd, slm_cmd
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
app.command("ask")(ask_cmd.ask)


def main() -> None:
    """Console entry point: product errors become one clear line and exit code 1."""
    try:
        app(standalone_mode=False)
    except UnderstudyError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
        sys.exit(1)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors carry their own exit code
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
