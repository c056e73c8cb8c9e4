"""What is served follows the registry: adapters into backends, and processes kept in step.

Every process that serves (the API, a worker) holds a :class:`CatalogSync`, which polls the
registry's generation counter (one indexed read) and, when it moved, loads the new adapters into
its SLM backend, builds a pre-router over the new effective catalog (:mod:`distill.catalog`) and
swaps both into the orchestrator — so a promotion or a rollback reaches every process within one
poll interval, without a restart.
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
from specialists.backend import SLMBackend
from specialists.catalog import Catalog
from specialists.errors import ConfigurationError, SpecialistError, UnderstudyError
from specialists.vllm_client import VLLMBackend

if TYPE_CHECKING:  # the agents SDK is slow to import; CLI commands that only read do without
    from orchestrator.run import Orchestrator

logger = logging.getLogger(__name__)

ALREADY_LOADED = "has already been loaded"
"""vLLM's refusal of a name it serves already (another process pushed the same change)."""


async def apply_adapters(backend: SLMBackend, before: Catalog | None, after: Catalog) -> None:
    """Make ``backend`` hold ``after``'s adapters, given that it holds ``before``'s.

    The local backend (re)loads every new or changed adapter; with ``before`` unknown (a
    process starting), all of them. A vLLM server is shared, so only *changes* are pushed to
    it: it loaded the served catalog when it started (``slm serve``), and every change since
    is pushed by whoever made it (``specialists promote``) and by every serving process that
    saw it. A new name is loaded as new (another process may have been first: fine); a
    changed one is reloaded in place; a dropped one is unloaded.

    Raises:
        SpecialistError: The backend refused or could not load an adapter.
    """
    if isinstance(backend, VLLMBackend):
        if before is not None:
            await _push_changes(backend, before, after)
        return
    previous = {s.name: s.adapter for s in before or ()}
    for specialist in after:
        if specialist.adapter is not None and (
            before is None or previous.get(specialist.name) != specialist.adapter
        ):
            await backend.load_adapter(specialist.name, specialist.adapter)


async def _push_changes(vllm: VLLMBackend, before: Catalog, after: Catalog) -> None:
    previous = {s.name: s.adapter for s in before}
    current = {s.name: s.adapter for s in after}
    for name, adapter in current.items():
        if adapter is None or previous.get(name) == adapter:
            continue
        if previous.get(name) is not None:
            await vllm.load_adapter(name, adapter, replace=True)
            continue
        try:
            await vllm.load_adapter(name, adapter, replace=False)
        except SpecialistError as exc:
            if ALREADY_LOADED not in str(exc):
                raise
    for name, adapter in previous.items():
        if adapter is not None and current.get(name) is None:
            with contextlib.suppress(SpecialistError):  # not loaded there: nothing to undo
                await vllm.unload_adapter(name)


PreRouterFactory = Callable[[Catalog], PreRouter | None]


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
        self._applied: Catalog | None = None

    async def sync(self) -> bool:
        """Apply the registry's catalog if its generation moved; whether anything changed.

        Adapters are loaded and the pre-router's prototypes computed *before* the swap, so the
        first request after it pays for neither; if loading fails the old catalog stays and
        the next poll tries again.

        Raises:
            UnderstudyError: The registry could not be read or an adapter could not be loaded.
        """
        generation = await self.registry.generation()
        if generation == self.generation:
            return False
        generation, catalog = await load_catalog(self.registry, self.base)
        await apply_adapters(self.orchestrator.backend, self._applied, catalog)
        prerouter = self.prerouter_factory(catalog)
        if prerouter is not None:
            await asyncio.to_thread(prerouter.prototypes)
        self.orchestrator.replace_catalog(catalog, prerouter)
        self.generation, self._applied = generation, catalog
        logger.info("serving registry generation %d: %s", generation, ", ".join(catalog.names))
        return True

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
    """A factory that builds pre-routers with ``current``'s embedder and threshold (so the
    embedding model is loaded once per process); none when there is no pre-router."""

    def build(catalog: Catalog) -> PreRouter | None:
        if current is None:
            return None
        return PreRouter(catalog, current.embedder, threshold=current.threshold)

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
