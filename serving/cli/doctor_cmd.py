"""``understudy doctor``: is this machine ready to serve? One line per check, with the fix.

Each check is one entry of :data:`CHECKS`: a coroutine that returns a :class:`Finding`, and the
fix to show when it raises instead (the exception's message is then the detail). Adding a check
is one entry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Annotated, Literal

import typer
from rich.markup import escape
from sqlalchemy import text

from database import mask_url
from distill.catalog import served_catalog, served_with_canaries
from serving.cli.output import console, print_json
from serving.runtime import model_store
from serving.sandbox import UNSAFE_SETTING
from serving.settings import Settings, get_settings
from serving.slm_server import lora_slots
from serving.stores import open_database, transcript_spool
from specialists.catalog import Catalog
from specialists.errors import AdaptersNotServed, UnderstudyError
from specialists.vllm_client import VLLMBackend
from tools.sandbox import sandbox_verdict

CHECK_TIMEOUT_S = 20.0


@dataclass(frozen=True, slots=True)
class Finding:
    status: Literal["ok", "warning", "failed"]
    detail: str
    fix: str | None = None


@dataclass(frozen=True, slots=True)
class Check:
    run: Callable[[Settings], Awaitable[Finding]]
    fix: str
    """What to do when ``run`` raises."""


async def check_sandbox(settings: Settings) -> Finding:
    verdict = await asyncio.to_thread(sandbox_verdict)
    if verdict.available:
        return Finding("ok", verdict.detail)
    if settings.sandbox.allow_unsandboxed:
        return Finding(
            "warning",
            f"run_python runs snippets WITHOUT the sandbox ({UNSAFE_SETTING}=true): "
            f"{verdict.detail}",
            verdict.fix,
        )
    return Finding(
        "failed",
        f"{verdict.detail}; the lead is not offered run_python and code scoring cannot run",
        f"{verdict.fix} (or, unsafely, {UNSAFE_SETTING}=true)",
    )


async def check_database(settings: Settings) -> Finding:
    """The database answers; transcripts waiting in the spool (it refused them) are a warning."""
    database = await open_database(settings, migrate=False)
    async with database, database.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    answers = f"{mask_url(settings.database_url)} answers"
    spool = transcript_spool(settings)
    pending = await asyncio.to_thread(spool.pending)
    if pending:
        return Finding(
            "warning",
            f"{answers}; {pending} transcript(s) it refused wait in {spool.directory}",
            "a running `understudy serve` or `understudy worker` writes them once the database "
            "takes writes; check that it does (GET /readyz)",
        )
    return Finding("ok", f"{answers}; no transcripts wait in the spool")


async def check_lead(settings: Settings) -> Finding:
    lead = settings.lead
    if lead.model or lead.base_url:
        return Finding("ok", f"{lead.model or 'the model'} at {lead.base_url or 'its provider'}")
    return Finding(
        "failed",
        "no lead configured: only slm mode works",
        "set UNDERSTUDY_LEAD_MODEL (e.g. openai/gpt-4o-mini) or UNDERSTUDY_LEAD_BASE_URL",
    )


async def check_slm(settings: Settings) -> Finding:
    slm = settings.slm
    if slm.backend == "vllm":
        backend = VLLMBackend(
            slm.base_url,
            base_model_name=slm.base_model,
            api_key=slm.api_key.get_secret_value() if slm.api_key else None,
            timeout_s=slm.timeout_s,
            connect_timeout_s=slm.connect_timeout_s,
            max_retries=0,
        )
        try:
            served = f"vLLM at {slm.base_url} serves {', '.join(await backend.served_models())}"
            try:
                catalog = await _served_catalog(settings)
            except UnderstudyError as exc:
                return Finding("warning", f"{served}; its adapters are unchecked: {exc}")
            await backend.require_adapters(catalog)
        except AdaptersNotServed as exc:
            return Finding("failed", str(exc), ADAPTERS_FIX)
        finally:
            await backend.aclose()
        return Finding("ok", served)
    path = await asyncio.to_thread(model_store(settings).resolve, slm.base_model)
    return Finding("ok", f"local backend, base model {slm.base_model} at {path}")


async def check_lora_slots(settings: Settings) -> Finding:
    """vLLM's LoRA slots against the adapters served at once (see ``LoraSlots``)."""
    if settings.slm.backend != "vllm":
        return Finding("ok", "local backend: every adapter shares the in-process model")
    async with await open_database(settings, migrate=False) as database:
        catalog, canaries = await served_with_canaries(database, settings.catalog())
    slots = lora_slots(settings, catalog, canaries=canaries)
    shortfall = slots.shortfall()
    if shortfall:
        return Finding("warning", shortfall, "set UNDERSTUDY_SLM_MAX_LORAS and restart vLLM")
    return Finding("ok", f"`slm serve` gives vLLM {slots.describe()}")


ADAPTERS_FIX = (
    "a running API or worker loads them again within UNDERSTUDY_DISTILL_REGISTRY_POLL_S; "
    "or restart the server with `understudy slm serve`, which starts with them"
)


async def _served_catalog(settings: Settings) -> Catalog:
    """The catalog the registry serves, whose adapters vLLM must hold."""
    async with await open_database(settings, migrate=False) as database:
        return await served_catalog(database, settings.catalog())


CHECKS: dict[str, Check] = {
    "sandbox": Check(check_sandbox, "see README, 'The code sandbox'"),
    "database": Check(check_database, "check UNDERSTUDY_DATABASE_URL and that the server is up"),
    "lead": Check(check_lead, "check the UNDERSTUDY_LEAD_* settings"),
    "slm": Check(
        check_slm,
        "local backend: understudy models pull <base model>; vllm backend: start it "
        "(understudy slm serve) or point UNDERSTUDY_SLM_BASE_URL at it",
    ),
    "lora_slots": Check(check_lora_slots, "check UNDERSTUDY_DATABASE_URL (the registry)"),
}
_MARKS = {"ok": "[green]✓[/]", "warning": "[yellow]![/]", "failed": "[red]✗[/]"}


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per check.")] = False,
) -> None:
    """Check what serving needs — the code sandbox, the database, the lead, the SLM — and say
    how to fix what fails. Exit code 1 if any check fails."""
    settings = get_settings()
    findings = asyncio.run(_run_all(settings))
    for name, finding in findings.items():
        if as_json:
            print_json({"check": name, **asdict(finding)}, compact=True)
            continue
        line = f"{_MARKS[finding.status]} {name:<10} {escape(finding.detail)}"
        if finding.fix:
            line += f"\n  [dim]fix:[/] {escape(finding.fix)}"
        console.print(line, highlight=False)
    if any(finding.status == "failed" for finding in findings.values()):
        raise typer.Exit(1)


async def _run_all(settings: Settings) -> dict[str, Finding]:
    findings = await asyncio.gather(*(_run(check, settings) for check in CHECKS.values()))
    return dict(zip(CHECKS, findings, strict=True))


async def _run(check: Check, settings: Settings) -> Finding:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            return await check.run(settings)
    except TimeoutError:
        return Finding("failed", f"no answer within {CHECK_TIMEOUT_S:g} s", check.fix)
    except Exception as exc:  # a check that raises has failed; its message says how
        return Finding("failed", f"{type(exc).__name__}: {exc}", check.fix)
