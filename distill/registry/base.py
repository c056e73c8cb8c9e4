"""The registry's store, first half: proposals, definitions and versions as they are
recorded (:mod:`distill.registry.lifecycle` adds what moves versions in and out of service).

Every write is one transaction that first locks the registry (``BEGIN IMMEDIATE`` on SQLite, the
``registry_state`` row on PostgreSQL), so version numbers and the one-active and one-canary
rules hold with any number of CLI, API and worker processes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
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
from distill.registry.errors import NotInRegistry, RegistryError, WrongStatus
from distill.registry.records import (
    Proposal,
    ProposalDraft,
    SpecialistDefinition,
    SpecialistVersion,
    definition_record,
    now,
    proposal_record,
    proposal_row,
    version_record,
)


class RegistryBase(Store):
    """Proposals, registered specialists and their versions, on the process's :class:`Database`;
    what every registry write shares (the lock, the generation)."""

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
        """A counter bumped by every change to what is served; cheap enough to poll every second."""
        async with self._read("generation") as session:
            return int(await session.scalar(select(RegistryStateRow.generation)) or 0)

    # ---------------------------------------------------------------------------- proposals

    async def replace_open_proposals(self, drafts: Sequence[ProposalDraft]) -> list[Proposal]:
        """Store this round's proposals in place of the open ones of the last round.

        Open proposals are a view of current traffic, so each ``propose`` recomputes them all;
        accepted and dismissed ones are history and stay.
        """
        for draft in drafts:
            check_name(draft.name)
        created_at = now()
        async with self._write("replace_open_proposals") as session:
            await session.execute(delete(ProposalRow).where(ProposalRow.status == "open"))
            rows = [proposal_row(draft, created_at) for draft in drafts]
            session.add_all(rows)
            await session.flush()
            return [proposal_record(row) for row in rows]

    async def list_proposals(self, *, status: str | None = None) -> list[Proposal]:
        """Proposals, most monthly savings first."""
        query = select(ProposalRow).order_by(ProposalRow.monthly_savings_usd.desc(), ProposalRow.id)
        if status is not None:
            query = query.where(ProposalRow.status == status)
        async with self._read("list_proposals") as session:
            return [proposal_record(row) for row in await session.scalars(query)]

    async def get_proposal(self, proposal_id: int) -> Proposal:
        async with self._read("get_proposal") as session:
            row = await session.get(ProposalRow, proposal_id)
            if row is None:
                raise NotInRegistry("proposal", proposal_id, "see `understudy distill propose`")
            return proposal_record(row)

    async def dismiss_proposal(self, proposal_id: int) -> Proposal:
        """Mark a proposal as not wanted; it stays as history."""
        async with self._write("dismiss_proposal") as session:
            row = await proposal_for_update(session, proposal_id)
            row.status = "dismissed"
            return proposal_record(row)

    # -------------------------------------------------------------------------- definitions

    async def define_specialist(self, definition: SpecialistDefinition) -> SpecialistDefinition:
        """Register a new specialist; with a ``proposal_id`` the proposal becomes ``accepted``.

        Raises:
            RegistryError: A specialist with this name is registered already.
            NotInRegistry: The proposal does not exist.
        """
        check_name(definition.name)
        async with self._write("define_specialist") as session:
            if await session.get(RegisteredSpecialistRow, definition.name) is not None:
                raise RegistryError(f"specialist {definition.name!r} is registered already")
            if definition.proposal_id is not None:
                proposal = await proposal_for_update(session, definition.proposal_id)
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
            return definition_record(row)

    async def get_definition(self, name: str) -> SpecialistDefinition | None:
        """The registry's definition of ``name``; ``None`` for built-in or unknown names."""
        async with self._read("get_definition") as session:
            row = await session.get(RegisteredSpecialistRow, name)
            return None if row is None else definition_record(row)

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
        check_name(specialist)
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
                created_at=now(),
            )
            session.add(row)
            await session.flush()
            return version_record(row)

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
            WrongStatus: The version is active or in canary: its figures are what it serves on.
        """
        async with self._write("record_evaluation") as session:
            row = await version_for_update(session, version_id)
            if row.status in ("active", "canary"):
                raise WrongStatus(
                    f"{row.specialist}@{row.version} is {row.status}; its figures are what it "
                    "serves on: evaluate a new candidate instead"
                )
            row.metrics = dict(metrics)
            row.threshold = threshold
            row.gate_passed = gate_passed
            row.evaluated_at = now()
            return version_record(row)

    async def get_version(self, version_id: int) -> SpecialistVersion:
        async with self._read("get_version") as session:
            row = await session.get(SpecialistVersionRow, version_id)
            if row is None:
                raise NotInRegistry("version", version_id, "see `understudy specialists list`")
            return version_record(row)

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
        return version_record(row)

    async def active_version(self, specialist: str) -> SpecialistVersion | None:
        query = select(SpecialistVersionRow).where(
            SpecialistVersionRow.specialist == specialist, SpecialistVersionRow.status == "active"
        )
        async with self._read("active_version") as session:
            row = (await session.scalars(query)).one_or_none()
            return None if row is None else version_record(row)

    async def list_versions(self, specialist: str | None = None) -> list[SpecialistVersion]:
        """Versions by specialist name, then version number."""
        query = select(SpecialistVersionRow).order_by(
            SpecialistVersionRow.specialist, SpecialistVersionRow.version
        )
        if specialist is not None:
            query = query.where(SpecialistVersionRow.specialist == specialist)
        async with self._read("list_versions") as session:
            return [version_record(row) for row in await session.scalars(query)]


def check_name(name: str) -> None:
    if not name.isidentifier() or len(name) > SPECIALIST_NAME_LENGTH:
        raise RegistryError(
            f"specialist name {name!r} must be a Python identifier of at most "
            f"{SPECIALIST_NAME_LENGTH} characters"
        )


async def bump(session: AsyncSession) -> None:
    await session.execute(
        update(RegistryStateRow)
        .where(RegistryStateRow.id == 1)
        .values(generation=RegistryStateRow.generation + 1)
    )


async def version_for_update(session: AsyncSession, version_id: int) -> SpecialistVersionRow:
    row = await session.get(SpecialistVersionRow, version_id)
    if row is None:
        raise NotInRegistry("version", version_id, "see `understudy specialists list`")
    return row


async def in_status(
    session: AsyncSession, specialist: str, status: str
) -> SpecialistVersionRow | None:
    """``specialist``'s version in ``status`` (``active`` or ``canary``: one at most)."""
    query = select(SpecialistVersionRow).where(
        SpecialistVersionRow.specialist == specialist, SpecialistVersionRow.status == status
    )
    return (await session.scalars(query)).one_or_none()


async def proposal_for_update(session: AsyncSession, proposal_id: int) -> ProposalRow:
    row = await session.get(ProposalRow, proposal_id)
    if row is None:
        raise NotInRegistry("proposal", proposal_id, "see `understudy distill propose`")
    return row
