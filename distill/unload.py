"""Superseded adapter versions leave the backends once no run can still be using them.

A promotion, rollback or demotion switches a specialist to another served name
(:func:`~specialists.adapters.served_adapter_name`); the old name must stay loaded while runs
that started on it finish. Within one process the backend counts the generations in flight per
name (:attr:`SLMBackend.adapter_uses <specialists.backend.SLMBackend.adapter_uses>`), but a
vLLM server is shared, and no process can count another's runs. What bounds them is time: every
process stops starting runs on a name within a registry poll of the registry taking it out of
the served set, and no run outlives the run budget. So a name is unloaded once

- its version is neither active nor canary, and left the served set (``retired_at``) longer
  ago than the grace (the run budget, a poll interval and a margin:
  ``unload_after_s``), and
- this process stopped serving it longer ago than the grace too (its sync may have lagged), and
- no use of it is in flight here (a generation, or a gate evaluation holding its candidate).

Every serving process's :class:`~distill.reconcile.CatalogSync` does this on each poll, so it
is idempotent: another process may have unloaded the name first (vLLM's 404 is no error), and
any other failure is logged and tried again at the next poll. A candidate under evaluation never
left the served set (it has no ``retired_at``), so only the gate that loaded it unloads it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from distill.catalog import version_tag
from distill.registry import SpecialistVersion
from specialists.adapters import adapter_name, served_adapter_name
from specialists.backend import SLMBackend
from specialists.catalog import Catalog
from specialists.errors import SpecialistError

logger = logging.getLogger(__name__)

SERVED_STATUSES = frozenset({"active", "canary"})
"""Statuses whose version answers traffic; every other version is superseded."""

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def left_served_set(version: SpecialistVersion) -> datetime | None:
    """When ``version`` stopped being served, if it was served and is no longer."""
    if version.status in SERVED_STATUSES:
        return None
    return version.retired_at


def adapter_names(catalogs: Iterable[Catalog]) -> set[str]:
    """The served names of the adapters of ``catalogs`` (the main one and its canary tiers)."""
    return {served_adapter_name(s) for catalog in catalogs for s in catalog if s.adapter}


class AdapterDrain:
    """Unloads one process's superseded adapter names from its backend once they drained.

    Args:
        backend: The process's SLM backend (a shared vLLM, or the in-process model).
        unload_after_s: The grace: how long after a name left the served set (the registry's,
            and this process's) no run can still be using it.
        clock: The time now, timezone-aware (tests move it).
    """

    def __init__(
        self, backend: SLMBackend, *, unload_after_s: float, clock: Clock = utc_now
    ) -> None:
        self.backend = backend
        self.grace = timedelta(seconds=unload_after_s)
        self.clock = clock
        self._superseded: dict[str, datetime] = {}
        """Superseded served names, with when the registry took each out of the served set."""
        self._left_here: dict[str, datetime] = {}
        """Served names this process stopped serving, and when."""

    def follow(
        self,
        versions: Iterable[SpecialistVersion],
        before: Iterable[Catalog],
        after: Iterable[Catalog],
    ) -> None:
        """Take a catalog swap into account: ``versions`` are the registry's at (or after)
        ``after``'s generation; ``before`` is what this process served until now (each
        catalog: the main one and its canary tiers)."""
        now, serving = self.clock(), adapter_names(after)
        for name in adapter_names(before) - serving:
            self._left_here.setdefault(name, now)
        for name in serving:
            self._left_here.pop(name, None)
        self._superseded = {
            adapter_name(version.specialist, version_tag(version)): left
            for version in versions
            if (left := left_served_set(version)) is not None
        }

    def drained(self, name: str, serving: set[str]) -> bool:
        """Whether ``name`` may be unloaded now (see the module docstring)."""
        left = self._superseded.get(name)
        if left is None or name in serving or self.backend.adapter_uses.count(name):
            return False
        cutoff = self.clock() - self.grace
        return left <= cutoff and self._left_here.get(name, left) <= cutoff

    async def sweep(self, serving: Iterable[Catalog]) -> list[str]:
        """Unload the drained names the backend still holds; the names unloaded.

        ``serving`` is what this process serves now (its catalogs: the main one and its canary
        tiers): their names are never unloaded. A failure is
        logged, and tried again at the next sweep.
        """
        if not self._superseded:
            return []
        current = adapter_names(serving)
        try:
            loaded = await self.backend.loaded_adapters()
        except SpecialistError as exc:
            logger.warning("could not list the loaded adapters (retrying): %s", exc)
            return []
        unloaded = []
        for name in sorted(loaded):
            if not self.drained(name, current):
                continue
            try:
                await self.backend.unload_adapter(name)
            except SpecialistError as exc:
                logger.warning(
                    "could not unload the superseded adapter %s (retrying): %s", name, exc
                )
                continue
            self._left_here.pop(name, None)
            unloaded.append(name)
        if unloaded:
            logger.info("unloaded superseded adapters: %s", ", ".join(unloaded))
        return unloaded
