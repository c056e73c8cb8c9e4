"""The registry's records: what its stores return, and how rows become them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from database.tables import (
    ProposalRow,
    RegisteredSpecialistRow,
    SpecialistEventRow,
    SpecialistVersionRow,
)


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ProposalDraft:
    """A proposed specialist before it is stored: a cluster of queries the lead answered itself."""

    name: str
    description: str
    examples: tuple[str, ...]
    """Representative user queries, most central first."""
    run_ids: tuple[str, ...]
    """Every run of the cluster: what a dataset for the new specialist is built from."""
    lead_cost_usd: float
    """What the lead cost on these runs."""
    window_days: float
    """The span of time the runs were observed over."""
    monthly_savings_usd: float
    """``lead_cost_usd`` scaled to 30 days: what moving this traffic off the lead would save."""
    validator: str = "nonempty"
    """The output check the lead's own answers suggest (numbers, code, prose)."""
    max_tokens: int = 256
    """Answer budget for the specialist: room for the longest answer the lead gave."""
    nearest_specialist: str | None = None
    """The existing specialist closest to the cluster, and its pre-router score."""
    nearest_score: float | None = None

    @property
    def run_count(self) -> int:
        return len(self.run_ids)


@dataclass(frozen=True, slots=True, kw_only=True)
class Proposal(ProposalDraft):
    """A stored proposal."""

    id: int
    status: str
    """``open``, ``accepted`` (a specialist was defined from it) or ``dismissed``."""
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SpecialistDefinition:
    """A specialist that exists only in the registry (built-in ones are defined in code)."""

    name: str
    description: str
    system_prompt: str
    validator: str
    examples: tuple[str, ...]
    max_tokens: int = 256
    proposal_id: int | None = None
    created_at: datetime = field(default_factory=now)


@dataclass(frozen=True, slots=True)
class SpecialistVersion:
    """One trained adapter of a specialist, and where it stands."""

    id: int
    specialist: str
    version: int
    status: str
    """``candidate``, ``canary``, ``active``, ``retired`` or ``rejected``."""
    adapter_path: str
    adapter_sha256: str
    base_model: str
    lora_rank: int
    dataset_path: str | None
    threshold: float | None
    """Confidence threshold calibrated on the validation split (None until evaluated)."""
    gate_passed: bool | None
    """The evaluation gate's verdict (None until evaluated)."""
    metrics: dict[str, Any]
    replaces_id: int | None
    """The version that was active before this one was promoted; where a rollback returns."""
    created_at: datetime
    evaluated_at: datetime | None
    promoted_at: datetime | None
    retired_at: datetime | None
    canary_share: float | None = None
    """The share of its specialist's traffic it serves (or served) as a canary."""
    retire_reason: str | None = None
    """Why it left service: ``rolled_back``, ``superseded`` or ``demoted``."""

    @property
    def label(self) -> str:
        """``name@version``, how the CLI and messages refer to it."""
        return f"{self.specialist}@{self.version}"


@dataclass(frozen=True, slots=True)
class RegistrySnapshot:
    """What serving needs, read in one transaction: the active versions and the canaries, the
    definitions, and the paused specialists."""

    generation: int
    active: tuple[SpecialistVersion, ...]
    """One per specialist that has an active version, by name."""
    definitions: Mapping[str, SpecialistDefinition]
    """Every registry-only specialist, active or not."""
    canaries: tuple[SpecialistVersion, ...] = ()
    """One per specialist with a canary (its ``canary_share`` set), by name."""
    paused: frozenset[str] = frozenset()
    """Specialists an operator paused: served by no one but the lead until resumed."""


class EventKind(StrEnum):
    """What a registry change was; every change writes one :class:`RegistryEvent`."""

    canary_started = "canary_started"
    promoted = "promoted"
    canary_passed = "canary_passed"
    canary_rejected = "canary_rejected"
    rolled_back = "rolled_back"
    demoted = "demoted"
    paused = "paused"
    resumed = "resumed"
    threshold_set = "threshold_set"


@dataclass(frozen=True, slots=True)
class RegistryEvent:
    """One change of the registry, as it was decided: by whom, why, and on which figures."""

    id: int
    specialist: str
    version_id: int | None
    """The version it concerns; ``None`` for a pause or a resume."""
    kind: EventKind
    reason: str
    figures: dict[str, Any]
    actor: str
    created_at: datetime


def proposal_row(draft: ProposalDraft, created_at: datetime) -> ProposalRow:
    return ProposalRow(
        name=draft.name,
        description=draft.description,
        examples=list(draft.examples),
        run_ids=list(draft.run_ids),
        run_count=draft.run_count,
        lead_cost_usd=draft.lead_cost_usd,
        window_days=draft.window_days,
        monthly_savings_usd=draft.monthly_savings_usd,
        validator=draft.validator,
        max_tokens=draft.max_tokens,
        nearest_specialist=draft.nearest_specialist,
        nearest_score=draft.nearest_score,
        status="open",
        created_at=created_at,
    )


def proposal_record(row: ProposalRow) -> Proposal:
    return Proposal(
        id=row.id,
        name=row.name,
        description=row.description,
        examples=tuple(row.examples),
        run_ids=tuple(row.run_ids),
        lead_cost_usd=row.lead_cost_usd,
        window_days=row.window_days,
        monthly_savings_usd=row.monthly_savings_usd,
        validator=row.validator,
        max_tokens=row.max_tokens,
        nearest_specialist=row.nearest_specialist,
        nearest_score=row.nearest_score,
        status=row.status,
        created_at=row.created_at,
    )


def definition_record(row: RegisteredSpecialistRow) -> SpecialistDefinition:
    return SpecialistDefinition(
        name=row.name,
        description=row.description,
        system_prompt=row.system_prompt,
        validator=row.validator,
        examples=tuple(row.examples),
        max_tokens=row.max_tokens,
        proposal_id=row.proposal_id,
        created_at=row.created_at,
    )


def version_record(row: SpecialistVersionRow) -> SpecialistVersion:
    return SpecialistVersion(
        id=row.id,
        specialist=row.specialist,
        version=row.version,
        status=row.status,
        adapter_path=row.adapter_path,
        adapter_sha256=row.adapter_sha256,
        base_model=row.base_model,
        lora_rank=row.lora_rank,
        dataset_path=row.dataset_path,
        threshold=row.threshold,
        gate_passed=row.gate_passed,
        metrics=dict(row.metrics or {}),
        replaces_id=row.replaces_id,
        created_at=row.created_at,
        evaluated_at=row.evaluated_at,
        promoted_at=row.promoted_at,
        retired_at=row.retired_at,
        canary_share=row.canary_share,
        retire_reason=row.retire_reason,
    )


def event_record(row: SpecialistEventRow) -> RegistryEvent:
    return RegistryEvent(
        id=row.id,
        specialist=row.specialist,
        version_id=row.version_id,
        kind=EventKind(row.kind),
        reason=row.reason,
        figures=dict(row.figures or {}),
        actor=row.actor,
        created_at=row.created_at,
    )
