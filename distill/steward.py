"""The steward: what the live audits decide, applied to the registry.

One pass (:meth:`Steward.run_once`) reads the registry's canary and active versions and their
live figures (:func:`~orchestrator.audits.version_figures`) and, through the registry,

1. concludes each canary whose verdict is in (:func:`~orchestrator.audits.canary_verdict`):
   ``pass`` makes it active, ``reject`` retires it;
2. demotes each active version that drifted (:func:`~orchestrator.audits.drift_verdict`), to
   the version before it or to the lead;
3. on its own, slower schedule, re-fits the threshold of each active version left
   (:mod:`distill.refit`).

Every decision is a registry event (with its reason and figures), a log line and a count on
``understudy_lifecycle_decisions_total{specialist, action}``. ``understudy worker``'s ``audit``
loop runs passes between drained audits (:func:`steward_loop`).

The registry is reached through :class:`LifecycleRegistry`, the part of
:class:`~distill.registry.RegistryStore` the steward calls, so the decisions can be tested on
any registry that keeps those promises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from prometheus_client import CollectorRegistry, Counter

from database import StoreError
from distill.catalog import version_tag
from distill.config import GateConfig
from distill.refit import refit_threshold
from distill.registry import RegistryError, SpecialistVersion
from orchestrator.audits import (
    AuditPolicy,
    AuditStore,
    LifecyclePolicy,
    ServedVersion,
    canary_verdict,
    drift_verdict,
    version_figures,
)

logger = logging.getLogger(__name__)

Action = Literal["pass", "reject", "demote", "refit"]
ACTOR = "steward"
"""Who the registry's events name as the actor of the steward's decisions."""


class LifecycleSnapshot(Protocol):
    """The part of a registry snapshot the steward reads."""

    @property
    def active(self) -> Sequence[SpecialistVersion]: ...

    @property
    def canaries(self) -> Sequence[SpecialistVersion]: ...


class LifecycleRegistry(Protocol):
    """The registry operations the steward applies its decisions with."""

    async def snapshot(self) -> LifecycleSnapshot: ...

    async def conclude_canary(
        self,
        version_id: int,
        *,
        passed: bool,
        reason: str,
        figures: Mapping[str, Any],
        actor: str = "worker",
    ) -> SpecialistVersion: ...

    async def demote(
        self,
        specialist: str,
        *,
        reason: str,
        figures: Mapping[str, Any],
        actor: str = "worker",
    ) -> tuple[SpecialistVersion, SpecialistVersion | None]: ...

    async def set_threshold(
        self,
        version_id: int,
        threshold: float,
        *,
        reason: str,
        figures: Mapping[str, Any],
        actor: str = "worker",
    ) -> SpecialistVersion: ...


@dataclass(frozen=True, slots=True)
class StewardConfig:
    """What the steward holds versions to, and how often it looks (built by the edge)."""

    lifecycle: LifecyclePolicy
    audits: AuditPolicy
    """The live figures' window."""
    gate: GateConfig
    """The re-fit's target precision and minimum count."""
    refit_min_change: float = 0.02
    """Smallest threshold change a re-fit applies."""
    interval_s: float = 60.0
    """Seconds between verdict passes."""
    refit_interval_s: float = 3600.0
    """Seconds between threshold re-fits."""

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.refit_interval_s <= 0 or self.refit_min_change <= 0:
            raise ValueError("interval_s, refit_interval_s and refit_min_change must be > 0")


@dataclass(frozen=True, slots=True)
class Decision:
    """One change the steward made."""

    specialist: str
    version: int
    action: Action
    reason: str
    figures: Mapping[str, Any]


class StewardMetrics:
    """The steward's decisions as a Prometheus counter on ``registry``. A worker started with
    the API's ``PROMETHEUS_MULTIPROC_DIR`` writes it where the API's ``/metrics`` adds it up."""

    def __init__(self, registry: CollectorRegistry, *, namespace: str = "understudy") -> None:
        self.decisions = Counter(
            "lifecycle_decisions",
            "Canary verdicts, demotions and threshold re-fits the steward applied",
            ["specialist", "action"],
            namespace=namespace,
            registry=registry,
        )


class Steward:
    """Applies the live audits' verdicts to the registry (see the module docstring)."""

    def __init__(
        self,
        registry: LifecycleRegistry,
        audits: AuditStore,
        config: StewardConfig,
        *,
        metrics: StewardMetrics,
    ) -> None:
        self.registry = registry
        self.audits = audits
        self.config = config
        self.metrics = metrics

    async def run_once(self, *, refit: bool) -> list[Decision]:
        """One pass: canary verdicts, demotions and (with ``refit``) threshold re-fits.

        A decision the registry refuses (another worker decided first) is logged and skipped:
        the next pass reads the registry as it is then.
        """
        snapshot = await self.registry.snapshot()
        served = {
            version.id: ServedVersion(version.specialist, version_tag(version), version.promoted_at)
            for version in (*snapshot.canaries, *snapshot.active)
        }
        figures = await version_figures(self.audits, served.values(), self.config.audits)
        decisions: list[Decision] = []
        concluded: set[str] = set()
        for version in snapshot.canaries:
            verdict = canary_verdict(figures[served[version.id]], self.config.lifecycle)
            if verdict.action in ("pass", "reject"):
                passed = verdict.action == "pass"
                decision = Decision(
                    version.specialist, version.version, "pass" if passed else "reject",
                    verdict.reason, verdict.figures,
                )  # fmt: skip
                if await self._apply(
                    decision,
                    self.registry.conclude_canary(
                        version.id,
                        passed=passed,
                        reason=verdict.reason,
                        figures=verdict.figures,
                        actor=ACTOR,
                    ),
                ):
                    decisions.append(decision)
                    concluded.add(version.specialist)
        for version in snapshot.active:
            if version.specialist in concluded:  # its active version changed in this pass
                continue
            verdict = drift_verdict(figures[served[version.id]], self.config.lifecycle)
            if verdict.action == "demote":
                decision = Decision(
                    version.specialist, version.version, "demote", verdict.reason, verdict.figures
                )
                if await self._apply(
                    decision,
                    self.registry.demote(
                        version.specialist,
                        reason=verdict.reason,
                        figures=verdict.figures,
                        actor=ACTOR,
                    ),
                ):
                    decisions.append(decision)
            elif refit:
                decisions.extend(await self._refit(version, served[version.id]))
        return decisions

    async def _refit(self, version: SpecialistVersion, served: ServedVersion) -> list[Decision]:
        """Re-fit ``version``'s threshold from its audited answers. An active version without a
        threshold did not pass the gate's calibration, so there is nothing to move."""
        if version.threshold is None:
            return []
        answers = await self.audits.audited_answers(
            served.specialist,
            served.version,
            window=self.config.audits.window,
            days=self.config.audits.window_days,
        )
        fit = refit_threshold(
            answers, version.threshold, self.config.gate, min_change=self.config.refit_min_change
        )
        if fit is None:
            return []
        figures = {
            "audited": fit.audited,
            "accepted": fit.accepted,
            "precision": fit.precision,
            "previous": fit.previous,
            "target_precision": self.config.gate.target_precision,
            "min_accepted": self.config.gate.min_accepted,
        }
        decision = Decision(version.specialist, version.version, "refit", fit.reason, figures)
        applied = await self._apply(
            decision,
            self.registry.set_threshold(
                version.id, fit.threshold, reason=fit.reason, figures=figures, actor=ACTOR
            ),
        )
        return [decision] if applied else []

    async def _apply(self, decision: Decision, change: Awaitable[object]) -> bool:
        """Await the registry ``change`` for ``decision``; log and count it, or log why the
        registry refused it."""
        label = f"{decision.specialist}@{decision.version}"
        try:
            await change
        except RegistryError as exc:
            logger.warning(
                "steward: %s %s refused by the registry: %s", decision.action, label, exc
            )
            return False
        logger.info("steward: %s %s: %s", decision.action, label, decision.reason)
        self.metrics.decisions.labels(decision.specialist, decision.action).inc()
        return True


async def steward_loop(steward: Steward, stop: asyncio.Event) -> None:
    """Run passes every ``interval_s`` (re-fits every ``refit_interval_s``) until ``stop``.
    A pass the database fails is logged and tried again at the next interval: the audit
    drain beside it keeps working, and the verdicts wait for the figures."""
    loop = asyncio.get_running_loop()
    refitted_at: float | None = None
    config = steward.config
    while not stop.is_set():
        now = loop.time()
        refit = refitted_at is None or now - refitted_at >= config.refit_interval_s
        try:
            await steward.run_once(refit=refit)
        except StoreError as exc:
            logger.warning("steward: pass skipped, the database failed: %s", exc)
        else:
            if refit:
                refitted_at = now
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), config.interval_s)
