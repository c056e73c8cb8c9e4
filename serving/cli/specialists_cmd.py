"""``understudy specialists``: what is served, and moving versions in and out of service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from database import Database
from distill.catalog import known_catalog
from distill.promotion import Promoter, choose_version
from distill.registry import RegistrySnapshot, RegistryStore, SpecialistVersion
from orchestrator.audits import (
    AuditStore,
    LiveStats,
    ServedVersion,
    live_figures,
    version_label,
)
from serving.cli import specialists_roi_cmd
from serving.cli.output import console, log_to_stderr, print_json
from serving.cli.specialist_events_cmd import events, pause, resume
from serving.operations import build_promoter
from serving.runtime import audit_policy, build_backend
from serving.settings import Settings, get_settings
from serving.stores import run_with_database
from specialists.catalog import DEFAULT_SPECIALISTS, Catalog, Specialist
from specialists.vllm_client import VLLMBackend

app = typer.Typer(
    help="List the specialists and their trained versions; promote a version that passed the "
    "evaluation gate (as a canary first), roll back, pause or resume a specialist, read the "
    "registry's events. Running servers follow within UNDERSTUDY_DISTILL_REGISTRY_POLL_S "
    "seconds, without a restart.",
    no_args_is_help=True,
)

app.command("pause")(pause)
app.command("resume")(resume)
app.command("events")(events)

T = TypeVar("T")
BUILT_IN = frozenset(specialist.name for specialist in DEFAULT_SPECIALISTS)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
NameArgument = Annotated[str, typer.Argument(help="The specialist, e.g. math.")]


def _with_registry(action: Callable[[RegistryStore], Awaitable[T]]) -> T:
    return run_with_database(get_settings(), lambda database: action(RegistryStore(database)))


@app.command("list")
def list_specialists(
    versions: Annotated[
        bool, typer.Option("--versions", help="Also list every version with its figures.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Every specialist: where it comes from, the version served, its status, its threshold,
    and its live figures from audits (precision with a 95 % Wilson interval, audit count) over
    the window of UNDERSTUDY_AUDIT_WINDOW audits and UNDERSTUDY_AUDIT_WINDOW_DAYS days."""
    settings = get_settings()

    async def read(
        database: Database,
    ) -> tuple[RegistrySnapshot, list[SpecialistVersion], Catalog, dict[str, LiveStats]]:
        registry = RegistryStore(database)
        snapshot, all_versions = await registry.snapshot(), await registry.list_versions()
        catalog = known_catalog(settings.catalog(), snapshot)
        active = {version.specialist: version for version in snapshot.active}
        served = [
            ServedVersion(
                s.name,
                version_label(s),
                active[s.name].promoted_at if s.name in active else None,
            )
            for s in catalog
        ]
        figures = await live_figures(AuditStore(database), served, audit_policy(settings))
        return snapshot, all_versions, catalog, figures

    snapshot, all_versions, catalog, figures = run_with_database(settings, read)
    active = {version.specialist: version for version in snapshot.active}
    if as_json:
        print_json(
            [
                {
                    "name": specialist.name,
                    "source": _source(settings, snapshot, specialist.name),
                    "status": _status(specialist.name, active, all_versions, snapshot),
                    "paused": specialist.name in snapshot.paused,
                    "active_version": active[specialist.name].version
                    if specialist.name in active
                    else None,
                    "threshold": specialist.confidence_threshold,
                    "validator": specialist.validator,
                    "adapter": str(specialist.adapter) if specialist.adapter else None,
                    "description": specialist.description,
                    "live": asdict(figures[specialist.name]),
                    "versions": [
                        asdict(v) for v in all_versions if v.specialist == specialist.name
                    ],
                }
                for specialist in catalog
            ]
        )
        return
    table = Table("specialist", "source", "served", "threshold", "validator", "versions")
    live = Table(
        "specialist",
        "status",
        "threshold",
        "live precision (95 %)",
        "audits",
        title=f"audited live (last {settings.audit.window} audits, "
        f"{settings.audit.window_days:g} days)",
    )
    for specialist in catalog:
        table.add_row(
            specialist.name,
            _source(settings, snapshot, specialist.name),
            _served(specialist, active.get(specialist.name), snapshot),
            f"{specialist.confidence_threshold:.3f}",
            specialist.validator,
            " · ".join(
                f"v{v.version} {_version_status(v)}{_gate_mark(v)}"
                for v in all_versions
                if v.specialist == specialist.name
            ),
        )
        stats = figures[specialist.name]
        live.add_row(
            specialist.name,
            _status(specialist.name, active, all_versions, snapshot),
            f"{specialist.confidence_threshold:.3f}",
            _precision(stats),
            str(stats.audits),
        )
    console.print(table)
    console.print(live)
    if versions and all_versions:
        console.print(_versions_table(all_versions))


@app.command("audits")
def list_audits(
    name: Annotated[str | None, typer.Argument(help="Only this specialist's audits.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Newest N.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """The newest audits: which answer, from which version, whether it agreed with the lead,
    and what asking the lead cost (audit spend)."""
    settings = get_settings()
    found = run_with_database(
        settings,
        lambda database: AuditStore(database).list_audits(specialist=name, limit=limit),
    )
    if as_json:
        print_json([asdict(audit) for audit in found])
        return
    table = Table("id", "run", "specialist", "version", "source", "status", "agreed", "cost")
    for audit in found:
        table.add_row(
            str(audit.id),
            audit.run_id,
            audit.specialist,
            audit.version,
            audit.source,
            audit.status if audit.attempts < 2 else f"{audit.status} ({audit.attempts} tries)",
            {None: "-", True: "yes", False: "no"}[audit.agreed],
            f"${audit.cost_usd:.4f}",
        )
    console.print(table)


@app.command("promote")
def promote(
    name: NameArgument,
    version: Annotated[
        int | None,
        typer.Option(
            "--version",
            "-v",
            min=1,
            help="Version number (default: the newest one that is not active).",
        ),
    ] = None,
    canary: Annotated[
        float | None,
        typer.Option(
            "--canary",
            min=0.0,
            max=1.0,
            help="Share of the specialist's traffic the version serves as a canary "
            "(default: UNDERSTUDY_CANARY_SHARE; 0: straight to active).",
        ),
    ] = None,
    now: Annotated[
        bool,
        typer.Option("--now", help="Skip the canary: active at once (an operator override)."),
    ] = False,
) -> None:
    """Serve a version that passed the evaluation gate (`understudy distill evaluate`): first as
    a canary on a share of the specialist's traffic, which its live audits conclude (active,
    or rejected); with --now (or a share of 0) as the active version at once.

    Checked first: the gate, the adapter's files against their recorded SHA-256, its base
    model and its LoRA rank against the SLM server's; with the vLLM backend, the server loads
    it at once (and must accept it). A version it replaces is retired and kept for rollback.
    """
    if now and canary is not None:
        raise typer.BadParameter("--now and --canary contradict each other; pass one")
    settings = get_settings()
    share = 0.0 if now else settings.canary.share if canary is None else canary

    async def run(registry: RegistryStore) -> SpecialistVersion:
        chosen = await choose_version(registry, name, version)
        return await _promoter(
            settings,
            registry,
            lambda p: p.promote(chosen, share=share, actor="cli", override=now),
        )

    served = _with_registry(run)
    threshold = f"{served.threshold:.3f}" if served.threshold is not None else "-"
    if served.status == "canary":
        what = f"is a canary on {share:.1%} of {name}'s traffic (threshold {threshold})"
    else:
        what = f"is active (threshold {threshold}); it is a tool for the lead and a route for "
        what += "the pre-router"
    console.print(f"{served.label} {what} as soon as servers sync", highlight=False)


@app.command("rollback")
def rollback(name: NameArgument) -> None:
    """Undo the last promotion: reject a canary in progress, or else retire the active version
    and serve the one it replaced.

    A specialist that was new stops being served; a built-in one returns to its definition in
    code (or its settings override).
    """
    settings = get_settings()

    async def run(registry: RegistryStore) -> tuple[SpecialistVersion, SpecialistVersion | None]:
        return await _promoter(settings, registry, lambda p: p.rollback(name, actor="cli"))

    retired, restored = _with_registry(run)
    now = f"{restored.label} is active" if restored else f"{name} has no active version"
    console.print(f"{retired.label} {retired.status}; {now}", highlight=False)


async def _promoter(
    settings: Settings, registry: RegistryStore, action: Callable[[Promoter], Awaitable[T]]
) -> T:
    """Run ``action`` with a :class:`Promoter` (and the vLLM client, with the vLLM backend)."""
    vllm = build_backend(settings) if settings.slm.backend == "vllm" else None
    assert vllm is None or isinstance(vllm, VLLMBackend)
    promoter = build_promoter(settings, registry, vllm, log=log_to_stderr)
    try:
        return await action(promoter)
    finally:
        if vllm is not None:
            await vllm.aclose()


def _source(settings: Settings, snapshot: RegistrySnapshot, name: str) -> str:
    if name in snapshot.definitions:
        return "registry"
    if name not in BUILT_IN:
        return "settings"
    return "built-in, overridden" if name in settings.specialists else "built-in"


def _served(
    specialist: Specialist, active: SpecialistVersion | None, snapshot: RegistrySnapshot
) -> str:
    if active is not None:
        return f"v{active.version}"
    if specialist.name in snapshot.definitions:
        return "not yet (no version promoted)"
    return "adapter" if specialist.adapter else "base + prompt"


def _status(
    name: str,
    active: dict[str, SpecialistVersion],
    versions: list[SpecialistVersion],
    snapshot: RegistrySnapshot,
) -> str:
    """``active`` while served (an active version, or the built-in or settings definition);
    a registry specialist with no version promoted yet is ``candidate`` (or ``untrained``);
    a canary in progress is added with its share (``active + canary v2 10.0%``), and a paused
    specialist says so first (``paused (active)``)."""
    if name in active or name not in snapshot.definitions:
        status = "active"
    else:
        status = "candidate" if any(v.specialist == name for v in versions) else "untrained"
    canary = next((c for c in snapshot.canaries if c.specialist == name), None)
    if canary is not None:
        canary_part = f"canary v{canary.version} {_share(canary)}"
        status = (
            canary_part if status in ("candidate", "untrained") else f"{status} + {canary_part}"
        )
    return f"paused ({status})" if name in snapshot.paused else status


def _share(version: SpecialistVersion) -> str:
    return f"{version.canary_share:.1%}" if version.canary_share is not None else ""


def _version_status(version: SpecialistVersion) -> str:
    """``canary 10.0%``, ``retired (demoted)``, or the bare status."""
    if version.status == "canary":
        return f"canary {_share(version)}"
    if version.status == "retired" and version.retire_reason:
        return f"retired ({version.retire_reason})"
    return version.status


def _precision(live: LiveStats) -> str:
    if live.precision is None:
        return "-"
    return f"{live.precision:.1%} [{live.interval.low:.1%}, {live.interval.high:.1%}]"


def _gate_mark(version: SpecialistVersion) -> str:
    return {None: "", True: " ✓", False: " ✗"}[version.gate_passed]


def _versions_table(versions: list[SpecialistVersion]) -> Table:
    table = Table(
        "version",
        "status",
        "gate",
        "threshold",
        "test precision",
        "coverage",
        "agrees with lead",
        "current agrees",
        "rank",
        "created",
    )
    for v in versions:
        test: dict[str, Any] = v.metrics.get("test") or {}
        candidate, current = test.get("candidate") or {}, test.get("current") or {}
        table.add_row(
            v.label,
            _version_status(v),
            {None: "-", True: "passed", False: "failed"}[v.gate_passed],
            _number(v.threshold, "{:.3f}"),
            _number(candidate.get("precision"), "{:.1%}"),
            _number(candidate.get("coverage"), "{:.1%}"),
            _number(candidate.get("accuracy"), "{:.1%}"),
            _number(current.get("accuracy"), "{:.1%}"),
            str(v.lora_rank),
            v.created_at.strftime("%Y-%m-%d"),
        )
    return table


def _number(value: float | None, form: str) -> str:
    return "-" if value is None else form.format(value)


app.command("roi")(specialists_roi_cmd.roi)
