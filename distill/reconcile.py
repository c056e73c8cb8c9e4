"""What is served follows the registry: adapters into backends, and processes kept in step.

Every process that serves (the API, a worker) holds a :class:`CatalogSync`, which polls the
registry's generation counter (one indexed read) and, when it moved, loads the new adapters into
its SLM backend, builds a pre-router over the new effective catalog (:mod:`distill.catalog`) and
swaps both into the orchestrator — so a promotion or a rollback reaches every process within one
poll interval, without a restart; so do canaries (each tier of the served catalogs gets its
lineup, :mod:`orchestrator.canary`) and paused specialists (left out of every lineup). Each
adapter version has a served name of its own, so runs in flight keep the version they started
with. On every poll a vLLM server is also given the served adapters it lacks (its first sync,
or after it restarted), so promoted specialists survive it, and superseded names are unloaded
once no run can still be using them (:mod:`distill.unload`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING

from distill.catalog import load_catalog
from distill.registry import RegistryStore
from distill.unload import AdapterDrain, Clock, utc_now
from orchestrator.canary import CanaryTier
from orchestrator.prerouter import PreRouter, catalog_fingerprint
from specialists.adapters import served_adapter_name
from specialists.backend import SLMBackend
from specialists.catalog import Catalog
from specialists.errors import ConfigurationError, UnderstudyError
from specialists.vllm_client import VLLMBackend

if TYPE_CHECKING:  # the agents SDK is slow to import; CLI commands that only read do without
    from orchestrator.run import Orchestrator

logger = logging.getLogger(__name__)


async def place_adapters(backend: SLMBackend, catalog: Catalog) -> list[str]:
    """Make ``backend`` serve every adapter of ``catalog`` under its served name; the names it
    asked the backend to load (on the local backend every adapter's: it skips those it holds).

    Served names are immutable (:func:`~specialists.adapters.served_adapter_name`), so placing
    only ever *loads*: a new version arrives under a new name next to the old one, and a run
    still generating with the old one keeps it. A vLLM server is asked once what it serves and
    gets what it lacks — a promotion, or everything after it restarted. Nothing is unloaded
    here: superseded names wait until no run can still use them (:mod:`distill.unload`).

    Raises:
        SpecialistError: The backend is unreachable, or refused or could not load an adapter
            (the first such failure, once every other adapter was loaded).
        ModelError: An adapter's files are missing.
    """
    if isinstance(backend, VLLMBackend):
        missing = await backend.missing_adapters(catalog)
    else:
        missing = {s.name: served_adapter_name(s) for s in catalog if s.adapter is not None}
    failures: list[UnderstudyError] = []
    for specialist in catalog:
        if specialist.name in missing and specialist.adapter is not None:
            try:
                await backend.load_adapter(missing[specialist.name], specialist.adapter)
            except UnderstudyError as exc:  # one bad adapter must not keep the others off
                failures.append(exc)
    if failures:
        raise failures[0]
    return list(missing.values())


async def place_all(backend: SLMBackend, catalogs: Iterable[Catalog]) -> list[str]:
    """:func:`place_adapters` for each served catalog (the main one and its canary tiers)."""
    placed: list[str] = []
    for catalog in catalogs:
        placed += [name for name in await place_adapters(backend, catalog) if name not in placed]
    return placed


PreRouterFactory = Callable[[Catalog], PreRouter | None]


class RegistryNotApplied(UnderstudyError):
    """The process has not applied the registry's catalog yet: it serves without the promoted
    specialists until a sync succeeds."""

    def __init__(self, cause: UnderstudyError | None) -> None:
        self.cause = cause
        super().__init__(
            "the registry's catalog is not applied yet"
            + (f" (last attempt: {cause})" if cause else " (no sync has run)")
        )


class CatalogSync:
    """Keeps one process's orchestrator and backend on the registry's current catalog.

    Args:
        registry: Where promotions and rollbacks are recorded.
        orchestrator: Gets each new catalog and pre-router through ``replace_catalog``.
        base: The catalog without the registry (built-ins and settings overrides).
        prerouter_factory: Builds the pre-router for a catalog (reusing the loaded embedder).
        interval_s: Seconds between polls.
        unload_after_s: How long after a version left the served set its adapter is unloaded
            (the run budget plus a poll and a margin: see :mod:`distill.unload`).
        clock: The time now (tests move it).
    """

    def __init__(
        self,
        registry: RegistryStore,
        orchestrator: Orchestrator,
        *,
        base: Catalog,
        prerouter_factory: PreRouterFactory,
        interval_s: float = 5.0,
        unload_after_s: float,
        clock: Clock = utc_now,
    ) -> None:
        self.registry = registry
        self.orchestrator = orchestrator
        self.base = base
        self.prerouter_factory = prerouter_factory
        self.interval_s = interval_s
        self.generation: int | None = None
        """The registry generation the orchestrator serves; ``None`` before the first sync."""
        self.last_error: UnderstudyError | None = None
        """Why the last poll failed; ``None`` after one that succeeded."""
        self.drain = AdapterDrain(orchestrator.backend, unload_after_s=unload_after_s, clock=clock)
        """Unloads the superseded adapters once they drained."""

    async def sync(self) -> bool:
        """Apply the registry's catalog if its generation moved; whether anything changed.

        Adapters are loaded and the pre-router's prototypes computed *before* the swap, so the
        first request after it pays for neither; if loading fails the old catalog stays and
        the next poll tries again. When nothing moved, a vLLM server is still checked for the
        served catalog's adapters, and given those it lacks: it may have restarted without
        them (an in-process model cannot lose its adapters, so the local backend is not).
        Either way, superseded adapters that drained are unloaded (a failure there is logged
        and retried at the next poll: it does not fail the sync).

        Raises:
            UnderstudyError: The registry could not be read or an adapter could not be loaded
                (kept in :attr:`last_error` for readiness).
        """
        try:
            changed = await self._apply()
        except UnderstudyError as exc:
            self.last_error = exc
            raise
        self.last_error = None
        return changed

    async def _apply(self) -> bool:
        changed = await self._follow_registry()
        await self.drain.sweep(self.orchestrator.lineups.catalogs)
        return changed

    async def _follow_registry(self) -> bool:
        backend = self.orchestrator.backend
        generation = await self.registry.generation()
        if generation == self.generation:
            if isinstance(backend, VLLMBackend):
                restored = await place_all(backend, self.orchestrator.lineups.catalogs)
                if restored:
                    logger.warning("vLLM lacked %s; loaded again", ", ".join(restored))
            return False
        served = await load_catalog(self.registry, self.base)
        await place_all(backend, served.all)
        prerouter = self.prerouter_factory(served.catalog)
        tiers = [
            CanaryTier(share, catalog, self._prerouter_for(catalog, served.catalog, prerouter))
            for share, catalog in served.canaries
        ]
        for router in {id(r): r for r in (prerouter, *(t.prerouter for t in tiers))}.values():
            if router is not None:
                await asyncio.to_thread(router.prototypes)
        versions = await self.registry.list_versions()  # at this generation or a later one
        before = self.orchestrator.lineups.catalogs
        self.orchestrator.replace_catalog(
            served.catalog, prerouter, canaries=tiers, paused=served.paused
        )
        self.drain.follow(versions, before, served.all)
        self.generation = served.generation
        logger.info(
            "serving registry generation %d: %s%s%s",
            served.generation,
            ", ".join(served.catalog.names),
            "".join(f"; canary {s:.1%}: {', '.join(c.names)}" for s, c in served.canaries),
            f"; paused: {', '.join(sorted(served.paused))}" if served.paused else "",
        )
        return True

    def _prerouter_for(
        self, catalog: Catalog, main: Catalog, main_router: PreRouter | None
    ) -> PreRouter | None:
        """A canary tier routes like the main catalog when it names the same specialists the
        same way (a canary of a served specialist): its pre-router is reused, prototypes and
        all. A canary-only specialist adds a route, so its tier gets a pre-router of its own."""
        if catalog_fingerprint(catalog) == catalog_fingerprint(main):
            return main_router
        return self.prerouter_factory(catalog)

    async def check(self) -> None:
        """Readiness: the registry's catalog is applied, and vLLM serves all its adapters.

        Raises:
            RegistryNotApplied: No sync has succeeded yet (the process serves the settings'
                catalog, without the promoted specialists).
            AdaptersNotServed: vLLM lacks adapters of the served catalog (it restarted: the
                next poll loads them again, unless it refuses them).
            SpecialistUnavailable: vLLM does not answer.
        """
        if self.generation is None:
            raise RegistryNotApplied(self.last_error)
        backend = self.orchestrator.backend
        if isinstance(backend, VLLMBackend):
            for catalog in self.orchestrator.lineups.catalogs:
                await backend.require_adapters(catalog)

    async def run(self) -> None:
        """Poll until cancelled; a failed poll is logged and retried at the next interval."""
        while True:
            await asyncio.sleep(self.interval_s)
            await self._sync_logged()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[CatalogSync]:
        """Sync once now, then keep polling in the background until the block exits.

        A process starts even when the first sync fails (vLLM still starting, say): it serves
        the catalog it has, and the next poll tries again.
        """
        await self._sync_logged()
        task = asyncio.create_task(self.run(), name="understudy-registry-sync")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _sync_logged(self) -> None:
        try:
            await self.sync()
        except UnderstudyError as exc:
            logger.warning("registry sync failed (retrying in %.0fs): %s", self.interval_s, exc)


def prerouter_like(current: PreRouter | None) -> PreRouterFactory:
    """A factory that builds pre-routers like ``current`` (its kind, embedder and calibration,
    so the embedding model is loaded once per process); none when there is no pre-router."""

    def build(catalog: Catalog) -> PreRouter | None:
        return None if current is None else current.for_catalog(catalog)

    return build


def registry_sync(
    orchestrator: Orchestrator, *, base: Catalog, interval_s: float, unload_after_s: float
) -> CatalogSync:
    """The :class:`CatalogSync` a serving process runs, on its transcript store's database.

    Args:
        base: The catalog without the registry (built-ins and settings overrides).
        interval_s: Seconds between polls.
        unload_after_s: See :class:`CatalogSync`.
    """
    if orchestrator.store is None:
        raise ConfigurationError("following the registry needs the orchestrator's database")
    return CatalogSync(
        RegistryStore(orchestrator.store.database),
        orchestrator,
        base=base,
        prerouter_factory=prerouter_like(orchestrator.prerouter),
        interval_s=interval_s,
        unload_after_s=unload_after_s,
    )
