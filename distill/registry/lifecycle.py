"""The registry's store, second half: moving versions in and out of service, and its history.

A version's life::

    candidate ──start_canary──▶ canary ──conclude(passed)──▶ active ──▶ retired
        │                         └──conclude(failed)──▶ rejected       (superseded,
        └────────────promote (an operator's --now, or share 0)──▶ active  rolled_back, demoted)

A canary serves a share of its specialist's traffic next to the active version (or, where
there is none, the lead or the built-in definition); at most one per specialist, enforced by
the database like the one active version. A paused specialist is served by no version at all
until resumed, whatever its versions' statuses. Every change is one transaction that also
bumps the generation serving processes poll, and writes one :class:`RegistryEvent` saying
what changed, why, on which figures and by whom.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from database.tables import (
    PausedSpecialistRow,
    RegisteredSpecialistRow,
    RegistryStateRow,
    SpecialistEventRow,
    SpecialistVersionRow,
)
from distill.registry.base import RegistryBase, bump, check_name, in_status, version_for_update
from distill.registry.errors import (
    CanaryInProgress,
    OutOfRange,
    PauseConflict,
    PromotionRefused,
    WrongStatus,
)
from distill.registry.records import (
    EventKind,
    RegistryEvent,
    RegistrySnapshot,
    SpecialistVersion,
    definition_record,
    event_record,
    now,
    version_record,
)

NOT_RESTORED = ("demoted", "rolled_back")
"""Retire reasons that keep a version from being reactivated by a demotion: what was taken out
of service for its answers must not come back by itself."""


class RegistryStore(RegistryBase):
    """The registry (proposals, definitions, versions) and the lifecycle of its versions."""

    # ------------------------------------------------------------------------------ serving

    async def snapshot(self) -> RegistrySnapshot:
        """What serving needs (generation, active versions, canaries, definitions, paused
        specialists), consistent with each other."""
        async with self._read("snapshot") as session, session.begin():
            generation = await session.scalar(select(RegistryStateRow.generation))
            served = await session.scalars(
                select(SpecialistVersionRow)
                .where(SpecialistVersionRow.status.in_(("active", "canary")))
                .order_by(SpecialistVersionRow.specialist)
            )
            versions = [version_record(row) for row in served]
            definitions = await session.scalars(select(RegisteredSpecialistRow))
            paused = await session.scalars(select(PausedSpecialistRow.name))
            return RegistrySnapshot(
                generation=int(generation or 0),
                active=tuple(v for v in versions if v.status == "active"),
                definitions={row.name: definition_record(row) for row in definitions},
                canaries=tuple(v for v in versions if v.status == "canary"),
                paused=frozenset(paused),
            )

    async def events(self, specialist: str | None = None, limit: int = 50) -> list[RegistryEvent]:
        """The newest ``limit`` events (of ``specialist``, or of all), newest first."""
        query = (
            select(SpecialistEventRow)
            .order_by(SpecialistEventRow.created_at.desc(), SpecialistEventRow.id.desc())
            .limit(limit)
        )
        if specialist is not None:
            query = query.where(SpecialistEventRow.specialist == specialist)
        async with self._read("events") as session:
            return [event_record(row) for row in await session.scalars(query)]

    # ---------------------------------------------------------------------------- canaries

    async def start_canary(self, version_id: int, share: float, *, actor: str) -> SpecialistVersion:
        """Let a version that passed the gate serve ``share`` of its specialist's traffic.

        Raises:
            OutOfRange: ``share`` is not strictly between 0 and 1 (0 is a straight
                :meth:`promote`; 1 would expose everything, which a canary exists to avoid).
            NotInRegistry: No such version.
            PromotionRefused: It failed or skipped the gate, is active, is a canary already,
                or was rejected; :class:`CanaryInProgress` when another version of the
                specialist is in canary.
        """
        if not 0.0 < share < 1.0:
            raise OutOfRange("a canary's share", share, "strictly between 0 and 1")
        async with self._write("start_canary") as session:
            row = await version_for_update(session, version_id)
            version = version_record(row)
            problem = promotion_refusal(version) or _canary_refusal(version)
            if problem:
                raise PromotionRefused(problem)
            await _no_other_canary(session, row, f"a canary of {version.label}")
            row.status, row.canary_share, row.retired_at = "canary", share, None
            await _change(
                session,
                row,
                EventKind.canary_started,
                f"serves {share:.1%} of {row.specialist}'s traffic",
                {"share": share},
                actor,
            )
            return version_record(row)

    async def conclude_canary(
        self,
        version_id: int,
        *,
        passed: bool,
        reason: str,
        figures: Mapping[str, Any],
        actor: str = "worker",
    ) -> SpecialistVersion:
        """End a canary: passed, it becomes active (the active version it replaces retires,
        ``superseded``); failed, it is ``rejected`` and the traffic it had goes back.

        Raises:
            NotInRegistry: No such version.
            WrongStatus: The version is not in canary.
        """
        async with self._write("conclude_canary") as session:
            row = await version_for_update(session, version_id)
            if row.status != "canary":
                raise WrongStatus(
                    f"{row.specialist}@{row.version} is {row.status}, not in canary; "
                    "only a canary can be concluded"
                )
            if passed:
                await _activate(session, row)
                kind = EventKind.canary_passed
            else:
                row.status, row.retired_at = "rejected", now()
                kind = EventKind.canary_rejected
            await _change(session, row, kind, reason, figures, actor)
            return version_record(row)

    # ---------------------------------------------------------------- active version changes

    async def promote(
        self,
        version_id: int,
        *,
        actor: str = "operator",
        reason: str = "promoted straight to active",
        figures: Mapping[str, Any] | None = None,
    ) -> SpecialistVersion:
        """Make a version active at once (no canary), retiring the one it replaces.

        Only a version that passed the gate can be promoted; a retired one can be promoted
        again (rolling forward), and a canary can be (an operator cutting it short).

        Raises:
            NotInRegistry: No such version.
            PromotionRefused: The version is active already, or was not evaluated, or failed;
                :class:`CanaryInProgress` when another version of the specialist is in canary.
        """
        async with self._write("promote") as session:
            row = await version_for_update(session, version_id)
            version = version_record(row)
            problem = promotion_refusal(version)
            if problem:
                raise PromotionRefused(problem)
            await _no_other_canary(session, row, f"promoting {version.label}")
            await _activate(session, row)
            await _change(session, row, EventKind.promoted, reason, figures or {}, actor)
            return version_record(row)

    async def rollback(
        self, specialist: str, *, actor: str = "operator"
    ) -> tuple[SpecialistVersion, SpecialistVersion | None]:
        """Undo the specialist's last change: a canary in progress is rejected (the active
        version keeps serving, returned second); else the active version retires
        (``rolled_back``) and the one it replaced, if any, is active again.

        Without a predecessor the specialist has no active version afterwards: a built-in one
        falls back to its definition in code, a registry-only one stops being served.

        Returns:
            The version taken out of service and the one active now (``None``: none).

        Raises:
            WrongStatus: ``specialist`` has neither a canary nor an active version.
        """
        async with self._write("rollback") as session:
            canary = await in_status(session, specialist, "canary")
            current = await in_status(session, specialist, "active")
            if canary is not None:
                canary.status, canary.retired_at = "rejected", now()
                reason = "canary rolled back by an operator"
                await _change(session, canary, EventKind.rolled_back, reason, {}, actor)
                return version_record(canary), None if current is None else version_record(current)
            if current is None:
                raise WrongStatus(
                    f"specialist {specialist!r} has no canary and no active version to roll back "
                    "(see `understudy specialists list`)"
                )
            previous = await _retire(session, current, "rolled_back", restore_any=True)
            figures = {"restored": _label(previous)}
            await _change(session, current, EventKind.rolled_back, "rolled back", figures, actor)
            return version_record(current), None if previous is None else version_record(previous)

    async def demote(
        self,
        specialist: str,
        *,
        reason: str,
        figures: Mapping[str, Any],
        actor: str = "worker",
    ) -> tuple[SpecialistVersion, SpecialistVersion | None]:
        """Take the active version out of service for its live figures (``demoted``).

        The version it replaced is active again if it passed its gate and did not leave
        service for its answers (demoted, rolled back, rejected); otherwise the specialist has
        no active version and the lead answers its traffic (a built-in one falls back to its
        definition in code).

        Returns:
            The demoted version and the one active now (``None``: none).

        Raises:
            WrongStatus: ``specialist`` has no active version.
        """
        async with self._write("demote") as session:
            current = await in_status(session, specialist, "active")
            if current is None:
                raise WrongStatus(
                    f"specialist {specialist!r} has no active version to demote "
                    "(see `understudy specialists list`)"
                )
            previous = await _retire(session, current, "demoted", restore_any=False)
            recorded = {**figures, "restored": _label(previous)}
            await _change(session, current, EventKind.demoted, reason, recorded, actor)
            return version_record(current), None if previous is None else version_record(previous)

    async def set_threshold(
        self,
        version_id: int,
        threshold: float,
        *,
        reason: str,
        figures: Mapping[str, Any],
        actor: str = "worker",
    ) -> SpecialistVersion:
        """Re-fit a served version's confidence threshold (from audited live data).

        Raises:
            OutOfRange: ``threshold`` is outside [0, 1].
            NotInRegistry: No such version.
            WrongStatus: The version is neither active nor in canary (a candidate's threshold
                comes from its evaluation).
        """
        if not 0.0 <= threshold <= 1.0:
            raise OutOfRange("a threshold", threshold, "in [0, 1]")
        async with self._write("set_threshold") as session:
            row = await version_for_update(session, version_id)
            if row.status not in ("active", "canary"):
                raise WrongStatus(
                    f"{row.specialist}@{row.version} is {row.status}: only a served version's "
                    "threshold is re-fitted (a candidate's comes from `understudy distill "
                    "evaluate`)"
                )
            recorded = {**figures, "previous": row.threshold, "threshold": threshold}
            row.threshold = threshold
            await _change(session, row, EventKind.threshold_set, reason, recorded, actor)
            return version_record(row)

    # ------------------------------------------------------------------------------ pausing

    async def pause(self, specialist: str, *, reason: str, actor: str) -> None:
        """Stop ``specialist`` from answering (no tool, no route, no direct requests) without
        touching its versions; built-in specialists too.

        Raises:
            RegistryError: Not a valid specialist name.
            PauseConflict: It is paused already.
        """
        check_name(specialist)
        async with self._write("pause") as session:
            if await session.get(PausedSpecialistRow, specialist) is not None:
                raise PauseConflict(f"specialist {specialist!r} is paused already")
            session.add(PausedSpecialistRow(name=specialist, reason=reason, paused_at=now()))
            await _record(session, specialist, None, EventKind.paused, reason, {}, actor)

    async def resume(self, specialist: str, *, actor: str) -> None:
        """Let a paused specialist answer again, as its versions say.

        Raises:
            PauseConflict: It is not paused.
        """
        async with self._write("resume") as session:
            row = await session.get(PausedSpecialistRow, specialist)
            if row is None:
                raise PauseConflict(f"specialist {specialist!r} is not paused")
            await session.delete(row)
            await _record(session, specialist, None, EventKind.resumed, "resumed", {}, actor)


def promotion_refusal(version: SpecialistVersion) -> str | None:
    """Why ``version`` cannot be promoted or start a canary (already active, not evaluated,
    failed the gate), or ``None`` when it can."""
    if version.status == "active":
        return f"{version.label} is already active"
    if version.gate_passed is None:
        return f"{version.label} has not been evaluated; run `understudy distill evaluate` first"
    if not version.gate_passed:
        reasons = "; ".join((version.metrics.get("gate") or {}).get("reasons") or [])
        return f"{version.label} failed the evaluation gate" + (f": {reasons}" if reasons else "")
    return None


def _canary_refusal(version: SpecialistVersion) -> str | None:
    if version.status == "canary":
        return f"{version.label} is in canary already"
    if version.status == "rejected":
        return (
            f"{version.label} was rejected during its canary; train a new version, or promote "
            "it with --now to override"
        )
    return None


async def _no_other_canary(session: AsyncSession, row: SpecialistVersionRow, what: str) -> None:
    canary = await in_status(session, row.specialist, "canary")
    if canary is not None and canary.id != row.id:
        raise CanaryInProgress(f"{canary.specialist}@{canary.version}", what)


async def _activate(session: AsyncSession, row: SpecialistVersionRow) -> None:
    """``row`` becomes the active version; the one it replaces retires, ``superseded``."""
    current = await in_status(session, row.specialist, "active")
    at = now()
    if current is not None:
        current.status, current.retired_at, current.retire_reason = "retired", at, "superseded"
        await session.flush()  # the one-active index must see the old one go first
    if row.status == "canary":
        row.status = "retired"  # leave the one-canary index before entering the one-active one
        await session.flush()
    row.status, row.promoted_at, row.retired_at, row.retire_reason = "active", at, None, None
    row.replaces_id = None if current is None else current.id


async def _retire(
    session: AsyncSession, current: SpecialistVersionRow, why: str, *, restore_any: bool
) -> SpecialistVersionRow | None:
    """Retire the active ``current`` for ``why``; reactivate the version it replaced when
    there is one (and, unless ``restore_any``, it passed its gate and did not leave service
    for its answers). The version active afterwards, if any."""
    current.status, current.retired_at, current.retire_reason = "retired", now(), why
    await session.flush()
    if current.replaces_id is None:
        return None
    previous = await session.get(SpecialistVersionRow, current.replaces_id)
    if previous is None or previous.status in ("active", "canary"):
        return None
    if not restore_any and (
        not previous.gate_passed
        or previous.status == "rejected"
        or previous.retire_reason in NOT_RESTORED
    ):
        return None
    previous.status, previous.retired_at, previous.retire_reason = "active", None, None
    return previous


async def _change(
    session: AsyncSession,
    row: SpecialistVersionRow,
    kind: EventKind,
    reason: str,
    figures: Mapping[str, Any],
    actor: str,
) -> None:
    await _record(session, row.specialist, row.id, kind, reason, figures, actor)


async def _record(
    session: AsyncSession,
    specialist: str,
    version_id: int | None,
    kind: EventKind,
    reason: str,
    figures: Mapping[str, Any],
    actor: str,
) -> None:
    """Write the change's event and bump the generation: every change alters what is served."""
    session.add(
        SpecialistEventRow(
            specialist=specialist,
            version_id=version_id,
            kind=kind.value,
            reason=reason,
            figures=dict(figures),
            actor=actor,
            created_at=now(),
        )
    )
    await bump(session)


def _label(row: SpecialistVersionRow | None) -> str | None:
    return None if row is None else f"{row.specialist}@{row.version}"
