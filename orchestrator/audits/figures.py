"""The live figures of the versions being served, read from the store: what
``understudy specialists list`` shows (and the console will)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from orchestrator.audits.policy import AuditPolicy
from orchestrator.audits.stats import LiveStats, WindowCounts, live_stats
from orchestrator.audits.store import AuditStore


@dataclass(frozen=True, slots=True)
class ServedVersion:
    """A specialist version being served, and since when (its promotion; ``None``: always)."""

    specialist: str
    version: str
    since: datetime | None = None


async def live_figures(
    store: AuditStore,
    served: Iterable[ServedVersion],
    policy: AuditPolicy,
    *,
    now: datetime | None = None,
) -> dict[str, LiveStats]:
    """Each served version's figures over the policy's window, by specialist name (one version
    a specialist: a canary beside its active version needs :func:`version_figures`)."""
    figures = await version_figures(store, served, policy, now=now)
    return {version.specialist: stats for version, stats in figures.items()}


async def version_figures(
    store: AuditStore,
    served: Iterable[ServedVersion],
    policy: AuditPolicy,
    *,
    now: datetime | None = None,
) -> dict[ServedVersion, LiveStats]:
    """Each served version's figures over the policy's window.

    Audits count per version; run figures (escalations, feedback) per specialist since the
    later of the window's start and the version's promotion, which keeps them to that version.
    """
    now = now or datetime.now(UTC)
    start = now - timedelta(days=policy.window_days)
    audited = await store.window_counts(window=policy.window, days=policy.window_days, now=now)
    figures: dict[ServedVersion, LiveStats] = {}
    for version in served:
        since = max(start, version.since) if version.since else start
        runs = await store.run_counts(version.specialist, since=since)
        counts = audited.get((version.specialist, version.version), WindowCounts(0, 0))
        figures[version] = live_stats(
            replace(runs, audits=counts.audits, agreements=counts.agreements)
        )
    return figures
