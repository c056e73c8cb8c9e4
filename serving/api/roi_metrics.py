"""The return-on-investment ledger as gauges on ``/metrics``, read at most once per refresh.

A scrape every few seconds must not sum the runs table every time: the ledger is read on a
scrape only when the last reading is older than ``refresh_s``
(``UNDERSTUDY_ROI_METRICS_REFRESH_S``), and concurrent scrapes share one reading. A database
that fails keeps the last values (logged), and the next scrape tries again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from database import Database, StoreError
from distill.catalog import known_catalog
from distill.registry import RegistryStore
from distill.roi import RoiConfig
from distill.roi_store import RoiStore
from serving.api.observability import Metrics
from specialists.catalog import Catalog

logger = logging.getLogger(__name__)


class RoiGauges:
    """Sets ``metrics``' per-specialist ROI gauges from the ledger, cached for ``refresh_s``.

    Args:
        database: The process's database.
        base_catalog: The specialists without the registry (settings); the registry's are added
            at every reading, so a specialist promoted since appears.
        config: Prices and projection window.
        refresh_s: How long a reading is reused.
    """

    def __init__(
        self,
        database: Database,
        base_catalog: Catalog,
        config: RoiConfig,
        *,
        refresh_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.database = database
        self.base_catalog = base_catalog
        self.config = config
        self.refresh_s = refresh_s
        self._clock = clock
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    async def update(self, metrics: Metrics) -> None:
        """Read the ledger into ``metrics`` unless the last reading is fresh."""
        async with self._lock:
            if self._read_at is not None and self._clock() - self._read_at < self.refresh_s:
                return
            try:
                snapshot = await RegistryStore(self.database).snapshot()
                names = sorted(known_catalog(self.base_catalog, snapshot).names)
                found = await RoiStore(self.database).ledgers(names, self.config)
            except StoreError as exc:
                logger.warning("ROI gauges not refreshed, keeping the last values: %s", exc)
                return
            for entry in found:
                metrics.roi_net.labels(specialist=entry.specialist).set(entry.net_usd)
                metrics.roi_training.labels(specialist=entry.specialist).set(entry.training_usd)
                metrics.roi_audit.labels(specialist=entry.specialist).set(entry.audit_usd)
                metrics.roi_saved.labels(specialist=entry.specialist).set(
                    entry.lead_cost_saved_usd - entry.serving_usd
                )
            self._read_at = self._clock()
