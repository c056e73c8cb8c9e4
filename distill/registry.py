"""The specialist registry: which trained version of each specialist is served, and what is next.

Rows (migration 0004) hold proposals for new specialists, the definitions of specialists that
exist only here, and every trained version of any specialist — adapter path and SHA-256, base
model, evaluation metrics, calibrated threshold, gate verdict and status
(``candidate`` → ``active`` → ``retired``). The registry is the source of truth for what is
served: serving processes poll :meth:`RegistryStore.generation`, which every change to the active
set bumps in the same transaction, and rebuild their catalog from :meth:`RegistryStore.snapshot`.

Errors, a small branch of :class:`~specialists.errors.UnderstudyError`::

    UnderstudyError
    └── RegistryError             a registry operation is refused; nothing was changed
        ├── NotInRegistry         no proposal, specialist or version by that id or name
        └── PromotionRefused      the version may not become active (gate, status)

Every write is one transaction that first locks the registry (``BEGIN IMMEDIATE`` on SQLite, the
``registry_state`` row on PostgreSQL), so version numbers and the one-active-version rule hold
with any number of CLI, API and worker processes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from database.engine import Database, Store, wrap_errors
from database.tables import (
    SPECIALIST_NAME_LENGTH,
    ProposalRow,
    RegisteredSpecialistRow,
    RegistryStateRow,
    SpecialistVersionRow,
)
from specialists.errors import UnderstudyError


class RegistryError(UnderstudyError):
    """A registry operation was refused; the registry is unchanged."""


class NotInRegistry(RegistryError):
    """No proposal, specialist or version matches.

    Args:
        kind: ``proposal``, ``specialist`` or ``version``.
        key: What was looked up.
        hint: Where to find valid keys.
    """

    def __init__(self, kind: str, key: object, hint: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"no {kind} {key!r} in the registry ({hint})")


class PromotionRefused(RegistryError):
    """The version cannot become active: it failed or skipped the gate, or is active already."""


def _now() -> datetime:
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
    created_at: datetime = field(default_factory=_now)


@dataclass(frozen=True, slots=True)
class SpecialistVersion:
    """One trained adapter of a specialist, and where it stands."""

    id: int
    specialist: str
    version: int
    status: str
    """``candidate``, ``active`` or ``retired``."""
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

    @property
    def label(self) -> str:
        """``name@version``, how the CLI and messages refer to it."""
        return f"{self.specialist}@{self.version}"


@dataclass(frozen=True, slots=True)
class RegistrySnapshot:
    """What serving needs, read in one transaction: the active versions and the definitions."""

    generation: int
    active: tuple[SpecialistVersion, ...]
    """One per specialist that has an active version, by name."""
    definitions: Mapping[str, SpecialistDefinition]
    """Every registry-only specialist, active or not."""


class RegistryStore(Store):
    """Proposals, registered specialists and their versions, on the process's :class:`Database`."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self._sessions = async_sessionmaker(database.engine, expire_on_commit=False)

    @asynccontextmanager
    async def _write(self, operation: str) -> AsyncIterator[AsyncSession]:
        """A write session that also locks the ``registry_state`` row (PostgreSQL; SQLite's
        transaction already excludes other writers), serialising every registry change across
        processes."""
        async with self.database.write_session(operation) as session:
            await session.execute(
                select(RegistryStateRow.id).where(RegistryStateRow.id == 1).with_for_update()
            )
            yield session

    @asynccontextmanager
    async def _read(self, operation: str) -> AsyncIterator[AsyncSession]:
        with wrap_errors(operation, self._url):
            async with self._sessions() as session:
                yield session

    # ------------------------------------------------------------------------------ serving

    async def generation(self) -> int:
        """A counter bumped by every promotion and rollback; cheap enough to poll every second."""
        async with self._read("generation") as session:
            return int(await session.scalar(select(RegistryStateRow.generation)) or 0)

    async def snapshot(self) -> RegistrySnapshot:
        """The generation, the active versions and the definitions, consistent with each other."""
        async with self._read("snapshot") as session, session.begin():
            generation = await session.scalar(select(RegistryStateRow.generation))
            active = await session.scalars(
                select(SpecialistVersionRow)
                .where(SpecialistVersionRow.status == "active")
                .order_by(SpecialistVersionRow.specialist)
            )
            versions = tuple(_version(row) for row in active)
            definitions = await session.scalars(select(RegisteredSpecialistRow))
            return RegistrySnapshot(
                generation=int(generation or 0),
                active=versions,
                definitions={row.name: _definition(row) for row in definitions},
            )

    # ---------------------------------------------------------------------------- proposals

    async def replace_open_proposals(self, drafts: Sequence[ProposalDraft]) -> list[Proposal]:
        """Store this round's proposals in place of the open ones of the last round.

        Open proposals are a view of current traffic, so each ``propose`` recomputes them all;
        accepted and dismissed ones are history and stay.
        """
        for draft in drafts:
            _check_name(draft.name)
        now = _now()
        async with self._write("replace_open_proposals") as session:
            await session.execute(delete(ProposalRow).where(ProposalRow.status == "open"))
            rows = [_proposal_row(draft, now) for draft in drafts]
            session.add_all(rows)
            await session.flush()
            return [_proposal(row) for row in rows]

    async def list_proposals(self, *, status: str | None = None) -> list[Proposal]:
        """Proposals, most monthly savings first."""
        query = select(ProposalRow).order_by(ProposalRow.monthly_savings_usd.desc(), ProposalRow.id)
        if status is not None:
            query = query.where(ProposalRow.status == status)
        async with self._read("list_proposals") as session:
            return [_proposal(row) for row in await session.scalars(query)]

    async def get_proposal(self, proposal_id: int) -> Proposal:
        async with self._read("get_proposal") as session:
            row = await session.get(ProposalRow, proposal_id)
            if row is None:
                raise NotInRegistry("proposal", proposal_id, "see `understudy distill propose`")
            return _proposal(row)

    async def dismiss_proposal(self, proposal_id: int) -> Proposal:
        """Mark a proposal as not wanted; it stays as history."""
        async with self._write("dismiss_proposal") as session:
            row = await _proposal_for_update(session, proposal_id)
            row.status = "dismissed"
            return _proposal(row)

    # -------------------------------------------------------------------------- definitions

    async def define_specialist(self, definition: SpecialistDefinition) -> SpecialistDefinition:
        """Register a new specialist; with a ``proposal_id`` the proposal becomes ``accepted``.

        Raises:
            RegistryError: A specialist with this name is registered already.
            NotInRegistry: The proposal does not exist.
        """
        _check_name(definition.name)
        async with self._write("define_specialist") as session:
            if await session.get(RegisteredSpecialistRow, definition.name) is not None:
                raise RegistryError(f"specialist {definition.name!r} is registered already")
            if definition.proposal_id is not None:
                proposal = await _proposal_for_update(session, definition.proposal_id)
                proposal.status = "accepted"
            row = RegisteredSpecialistRow(
                name=definition.name,
                description=definition.description,
                system_prompt=definition.system_prompt,
                validator=definition.validator,
                examples=list(definition.examples),
                max_tokens=definition.max_tokens,
                proposal_id=definition.proposal_id,
                created_at=definition.created_at,
            )
            session.add(row)
            await session.flush()
            return _definition(row)

    async def get_definition(self, name: str) -> SpecialistDefinition | None:
        """The registry's definition of ``name``; ``None`` for built-in or unknown names."""
        async with self._read("get_definition") as session:
            row = await session.get(RegisteredSpecialistRow, name)
            return None if row is None else _definition(row)

    # ----------------------------------------------------------------------------- versions

    async def add_version(
        self,
        specialist: str,
        *,
        adapter_path: str,
        adapter_sha256: str,
        base_model: str,
        lora_rank: int,
        dataset_path: str | None = None,
    ) -> SpecialistVersion:
        """Register a trained adapter as the specialist's next version, a ``candidate``.

        The caller has checked that the specialist exists and the adapter fits its base.
        """
        _check_name(specialist)
        async with self._write("add_version") as session:
            latest = await session.scalar(
                select(func.max(SpecialistVersionRow.version)).where(
                    SpecialistVersionRow.specialist == specialist
                )
            )
            row = SpecialistVersionRow(
                specialist=specialist,
                version=int(latest or 0) + 1,
                status="candidate",
                adapter_path=adapter_path,
                adapter_sha256=adapter_sha256,
                base_model=base_model,
                lora_rank=lora_rank,
                dataset_path=dataset_path,
                metrics={},
                created_at=_now(),
            )
            session.add(row)
            await session.flush()
            return _version(row)

    async def record_evaluation(
        self,
        version_id: int,
        *,
        metrics: Mapping[str, Any],
        threshold: float | None,
        gate_passed: bool,
    ) -> SpecialistVersion:
        """Store an evaluation's figures, its calibrated threshold (``None``: no threshold was
        precise enough) and the gate's verdict.

        Raises:
            NotInRegistry: No such version.
            RegistryError: The version is active: its figures are what it was promoted on.
        """
        async with self._write("record_evaluation") as session:
            row = await _version_for_update(session, version_id)
            if row.status == "active":
                raise RegistryError(
                    f"{row.specialist}@{row.version} is active; evaluate a new candidate instead"
                )
            row.metrics = dict(metrics)
            row.threshold = threshold
            row.gate_passed = gate_passed
            row.evaluated_at = _now()
            return _version(row)

    async def get_version(self, version_id: int) -> SpecialistVersion:
        async with self._read("get_version") as session:
            row = await session.get(SpecialistVersionRow, version_id)
            if row is None:
                raise NotInRegistry("version", version_id, "see `understudy specialists list`")
            return _version(row)

    async def find_version(self, specialist: str, version: int | None = None) -> SpecialistVersion:
        """Version ``version`` of ``specialist``; without one, its newest version.

        Raises:
            NotInRegistry: The specialist has no such version (or none at all).
        """
        query = select(SpecialistVersionRow).where(SpecialistVersionRow.specialist == specialist)
        if version is None:
            query = query.order_by(SpecialistVersionRow.version.desc()).limit(1)
        else:
            query = query.where(SpecialistVersionRow.version == version)
        async with self._read("find_version") as session:
            row = (await session.scalars(query)).first()
        if row is None:
            key = specialist if version is None else f"{specialist}@{version}"
            raise NotInRegistry("version", key, "see `understudy specialists list`")
        return _version(row)

    async def active_version(self, specialist: str) -> SpecialistVersion | None:
        query = select(SpecialistVersionRow).where(
            SpecialistVersionRow.specialist == specialist, SpecialistVersionRow.status == "active"
        )
        async with self._read("active_version") as session:
            row = (await session.scalars(query)).one_or_none()
            return None if row is None else _version(row)

    async def list_versions(self, specialist: str | None = None) -> list[SpecialistVersion]:
        """Versions by specialist name, then version number."""
        query = select(SpecialistVersionRow).order_by(
            SpecialistVersionRow.specialist, SpecialistVersionRow.version
        )
        if specialist is not None:
            query = query.where(SpecialistVersionRow.specialist == specialist)
        async with self._read("list_versions") as session:
            return [_version(row) for row in await session.scalars(query)]

    async def promote(self, version_id: int) -> SpecialistVersion:
        """Make a version active, retiring the one it replaces, and bump the generation.

        Only a version that passed the evaluation gate can be promoted; a retired one can be
        promoted again (rolling forward).

        Raises:
            NotInRegistry: No such version.
            PromotionRefused: The version is active already, or was not evaluated, or failed.
        """
        async with self._write("promote") as session:
            row = await _version_for_update(session, version_id)
            problem = promotion_refusal(_version(row))
            if problem:
                raise PromotionRefused(problem)
            now = _now()
            current = await _active_for_update(session, row.specialist)
            if current is not None:
                current.status, current.retired_at = "retired", now
                await session.flush()  # the one-active index must see the old one go first
            row.status, row.promoted_at, row.retired_at = "active", now, None
            row.replaces_id = None if current is None else current.id
            await _bump(session)
            return _version(row)

    async def rollback(self, specialist: str) -> tuple[SpecialistVersion, SpecialistVersion | None]:
        """Retire the active version and reactivate the one it replaced, if any.

        Without a predecessor the specialist has no active version afterwards: a built-in one
        falls back to its definition in code, a registry-only one stops being served.

        Returns:
            The retired version and the restored one (``None`` when nothing was restored).

        Raises:
            RegistryError: ``specialist`` has no active version.
        """
        async with self._write("rollback") as session:
            current = await _active_for_update(session, specialist)
            if current is None:
                raise RegistryError(
                    f"specialist {specialist!r} has no active version to roll back "
                    "(see `understudy specialists list`)"
                )
            now = _now()
            current.status, current.retired_at = "retired", now
            await session.flush()
            previous = None
            if current.replaces_id is not None:
                previous = await session.get(SpecialistVersionRow, current.replaces_id)
            if previous is not None:
                previous.status, previous.retired_at = "active", None
            await _bump(session)
            return _version(current), None if previous is None else _version(previous)


def promotion_refusal(version: SpecialistVersion) -> str | None:
    """Why ``version`` cannot be promoted (already active, not evaluated, failed the gate), or
    ``None`` when it can."""
    if version.status == "active":
        return f"{version.label} is already active"
    if version.gate_passed is None:
        return f"{version.label} has not been evaluated; run `understudy distill evaluate` first"
    if not version.gate_passed:
        reasons = "; ".join((version.metrics.get("gate") or {}).get("reasons") or [])
        return f"{version.label} failed the evaluation gate" + (f": {reasons}" if reasons else "")
    return None


def _check_name(name: str) -> None:
    if not name.isidentifier() or len(name) > SPECIALIST_NAME_LENGTH:
        raise RegistryError(
            f"specialist name {name!r} must be a Python identifier of at most "
            f"{SPECIALIST_NAME_LENGTH} characters"
        )


async def _bump(session: AsyncSession) -> None:
    await session.execute(
        update(RegistryStateRow)
        .where(RegistryStateRow.id == 1)
        .values(generation=RegistryStateRow.generation + 1)
    )


async def _version_for_update(session: AsyncSession, version_id: int) -> SpecialistVersionRow:
    row = await session.get(SpecialistVersionRow, version_id)
    if row is None:
        raise NotInRegistry("version", version_id, "see `understudy specialists list`")
    return row


async def _active_for_update(session: AsyncSession, specialist: str) -> SpecialistVersionRow | None:
    query = select(SpecialistVersionRow).where(
        SpecialistVersionRow.specialist == specialist, SpecialistVersionRow.status == "active"
    )
    return (await session.scalars(query)).one_or_none()


async def _proposal_for_update(session: AsyncSession, proposal_id: int) -> ProposalRow:
    row = await session.get(ProposalRow, proposal_id)
    if row is None:
        raise NotInRegistry("proposal", proposal_id, "see `understudy distill propose`")
    return row


def _proposal_row(draft: ProposalDraft, now: datetime) -> ProposalRow:
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
        created_at=now,
    )


def _proposal(row: ProposalRow) -> Proposal:
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


def _definition(row: RegisteredSpecialistRow) -> SpecialistDefinition:
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


def _version(row: SpecialistVersionRow) -> SpecialistVersion:
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
    )
