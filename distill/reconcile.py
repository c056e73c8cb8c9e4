"""What is served follows the registry: adapters into backends, and processes kept in step.

Every process that serves (the API, a worker) holds a :class:`CatalogSync`, which polls the
registry's generation counter (one indexed read) and, when it moved, loads the new adapters into
its SLM backend, builds a pre-router over the new effective catalog (:mod:`distill.catalog`) and
swaps both into the orchestrator — so a promotion or a rollback reaches every process within one
poll interval, without a restart. Each adapter version has a served name of its own, so runs in
flight keep the version they started with. On every poll a vLLM server is also given the served
adapters it lacks (its first sync, or after it restarted), so promoted specialists survive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from distill.catalog import load_catalog
from distill.registry import RegistryStore
from orchestrator.prerouter import PreRouter
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
    gets what it lacks — a promotion, or everything after it restarted. Nothing is unloaded: a
    shared vLLM cannot tell whether another process still has runs on a superseded name, and a
    name vLLM registers costs it no memory until a request uses it (its LoRA cache loads
    adapters from disk on demand, LRU). Unloading after every process has drained is issue
    14's.

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
    """

    def __init__(
        self,
        registry: RegistryStore,
        orchestrator: Orchestrator,
        *,
        base: Catalog,
        prerouter_factory: PreRouterFactory,
        interval_s: float = 5.0,
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

    async def sync(self) -> bool:
        """Apply the registry's catalog if its generation moved; whether anything changed.

        Adapters are loaded and the pre-router's prototypes computed *before* the swap, so the
        first request after it pays for neither; if loading fails the old catalog stays and
        the next poll tries again. When nothing moved, a vLLM server is still checked for the
        served catalog's adapters, and given those it lacks: it may have restarted without
        them (an in-process model cannot lose its adapters, so the local backend is not).

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
        backend = self.orchestrator.backend
        generation = await self.registry.generation()
        if generation == self.generation:
            if isinstance(backend, VLLMBackend):
                restored = await place_adapters(backend, self.orchestrator.catalog)
                if restored:
                    logger.warning("vLLM lacked %s; loaded again", ", ".join(restored))
            return False
        generation, catalog = await load_catalog(self.registry, self.base)
        await place_adapters(backend, catalog)
        prerouter = self.prerouter_factory(catalog)
        if prerouter is not None:
            await asyncio.to_thread(prerouter.prototypes)
        self.orchestrator.replace_catalog(catalog, prerouter)
        self.generation = generation
        logger.info("serving registry generation %d: %s", generation, ", ".join(catalog.names))
        return True

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
            await backend.require_adapters(self.orchestrator.catalog)

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


def registry_sync(orchestrator: Orchestrator, *, base: Catalog, interval_s: float) -> CatalogSync:
    """The :class:`CatalogSync` a serving process runs, on its transcript store's database.

    Args:
        base: The catalog without the registry (built-ins and settings overrides).
        interval_s: Seconds between polls.
    """
    if orchestrator.store is None:
        raise ConfigurationError("following the registry needs the orchestrator's database")
    return CatalogSync(
        RegistryStore(orchestrator.store.database),
        orchestrator,
        base=base,
        prerouter_factory=prerouter_like(orchestrator.prerouter),
        interval_s=interval_s,
    )
