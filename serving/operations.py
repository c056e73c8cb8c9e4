"""The operator's actions, shared by ``/v1/admin`` (API) and ``/console`` (browser), so each
does exactly the same thing whichever door it came through — and what the CLI does.

Every function takes the app's stores and settings (``app.state``) and answers plain data; the
two doors only differ in how they render it and how they authenticate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any

from starlette.datastructures import State

from distill.catalog import known_specialist
from distill.jobs import DistillJob
from distill.promotion import Promoter, choose_version, served_base
from distill.proposals import accept
from distill.registry import Proposal, RegistryStore, SpecialistDefinition, SpecialistVersion
from serving.eta import training_eta
from serving.keys import ApiKey, KeyUsage
from serving.runtime import distill_config
from serving.settings import Settings
from specialists.errors import ConfigurationError
from specialists.vllm_client import VLLMBackend


def build_promoter(
    settings: Settings,
    registry: RegistryStore,
    vllm: VLLMBackend | None,
    log: Callable[[str], None] = lambda _m: None,
) -> Promoter:
    """The :class:`Promoter` the CLI and the server both use: the settings' catalog and served
    base, and the vLLM client when the SLM backend is vLLM (``None`` with the local one)."""
    config = distill_config(settings)
    return Promoter(
        registry, base_catalog=config.catalog, served=served_base(config), vllm=vllm, log=log
    )


def _promoter(state: State) -> Promoter:
    backend = state.backend
    return build_promoter(
        state.settings, state.registry, backend if isinstance(backend, VLLMBackend) else None
    )


async def promote(
    state: State,
    name: str,
    version: int | None,
    *,
    canary: float | None = None,
    now: bool = False,
    actor: str = "console",
) -> SpecialistVersion:
    """``understudy specialists promote NAME [--version N] [--canary SHARE | --now]``: a canary
    on ``canary`` (default ``UNDERSTUDY_CANARY_SHARE``) of the specialist's traffic, or with
    ``now`` the active version at once (an operator override).

    Raises:
        RegistryError, PromotionRefused, ModelError, ConfigurationError: As the CLI says them.
    """
    if now and canary is not None:
        raise ConfigurationError("now and canary contradict each other; pass one")
    share = 0.0 if now else state.settings.canary.share if canary is None else canary
    chosen = await choose_version(state.registry, name, version)
    return await _promoter(state).promote(chosen, share=share, actor=actor, override=now)


async def rollback(
    state: State, name: str, *, actor: str = "console"
) -> tuple[SpecialistVersion, SpecialistVersion | None]:
    """``understudy specialists rollback NAME``: a canary in progress is rejected, else the
    active version retires for the one it replaced.

    Raises:
        RegistryError: ``name`` has no active version.
    """
    return await _promoter(state).rollback(name, actor=actor)


async def pause(
    state: State, name: str, *, reason: str = "paused by an operator", actor: str = "console"
) -> None:
    """``understudy specialists pause NAME``: the specialist answers nothing (no tool, no route,
    direct requests refused) until resumed; its versions keep their statuses.

    Raises:
        UnknownSpecialistError: Neither the settings nor the registry know ``name``.
        PauseConflict: It is paused already.
    """
    await known_specialist(state.database, state.settings.catalog(), name)
    await state.registry.pause(name, reason=reason, actor=actor)


async def resume(state: State, name: str, *, actor: str = "console") -> None:
    """``understudy specialists resume NAME``: it answers again, as its versions say.

    Raises:
        PauseConflict: It is not paused (an unknown name is not paused either).
    """
    await state.registry.resume(name, actor=actor)


async def accept_proposal(state: State, proposal_id: int) -> SpecialistDefinition:
    """``understudy distill accept ID``: the proposal becomes a specialist definition."""
    return await accept(state.registry, proposal_id)


def version_dict(version: SpecialistVersion) -> dict[str, Any]:
    """A version as the admin API shows it (times as ISO 8601)."""
    return {
        "object": "specialist.version",
        "label": version.label,
        **{k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in asdict(version).items()},
    }


def key_dict(key: ApiKey, usage: KeyUsage | None = None) -> dict[str, Any]:
    """A key as the admin API shows it, with its usage when read: never its plaintext, never
    its hash."""
    shown = {
        "object": "api_key",
        **{k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in asdict(key).items()},
    }
    return shown if usage is None else {**shown, "usage": asdict(usage)}


def proposal_dict(proposal: Proposal) -> dict[str, Any]:
    values = asdict(proposal)
    values["created_at"] = proposal.created_at.isoformat()
    values["run_count"] = proposal.run_count
    del values["run_ids"]  # thousands of ids: `understudy distill show` lists them
    return {"object": "specialist.proposal", **values}


def job_eta(job: DistillJob) -> datetime | None:
    """When a running job's training ends, at its rate so far; ``None`` when not training."""
    if job.status != "running" or job.training is None:
        return None
    return training_eta(job.training)


def job_dict(job: DistillJob) -> dict[str, Any]:
    """A job as the admin API shows it, its ``training`` progress with its ``eta``."""
    values = {k: v for k, v in asdict(job).items() if k != "training"}
    eta = job_eta(job)
    training = None if job.training is None else job.training.as_dict()
    return {
        "object": "distill.job",
        **{k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in values.items()},
        "training": training and {**training, "eta": eta.isoformat() if eta else None},
    }
