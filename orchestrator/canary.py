"""Which lineup a run gets: the canaries' share of runs, chosen by run id.

A canary version serves a share of its specialist's traffic. The choice hashes the run id with
a salt of its own — so it is deterministic (a retried batch item, a replayed run, get the same
version) and independent of the audit choice (:func:`orchestrator.audits.policy.is_selected`,
unsalted), which must sample canary and non-canary runs alike. One point per run serves every
canary: the lineups are tiered by share (:class:`~distill.catalog.ServedCatalogs`), so a run
whose point is below a canary's share gets that canary, and each canary serves exactly its
share. Everything is prepared when the catalog is replaced; choosing costs one hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.prerouter import PreRouter
from orchestrator.run_state import Lineup
from specialists.catalog import Catalog

CANARY_SALT = b"understudy-canary\x00"


def canary_point(run_id: str) -> float:
    """``run_id``'s place in [0, 1) for the canary choice: its salted SHA-256 as a number."""
    digest = hashlib.sha256(CANARY_SALT + run_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True, slots=True)
class CanaryTier:
    """A catalog with canaries applied, for the runs whose canary point is below ``share``."""

    share: float
    catalog: Catalog
    prerouter: PreRouter | None


@dataclass(frozen=True, slots=True)
class Lineups:
    """The lineups a process serves: the main one, the canary tiers (largest share first),
    and the paused specialists (in none of them, refused by name)."""

    main: Lineup
    tiers: tuple[tuple[float, Lineup], ...] = ()
    paused: frozenset[str] = frozenset()

    def for_run(self, run_id: str) -> Lineup:
        """The lineup of the run ``run_id``: the deepest tier whose share its point is below."""
        chosen = self.main
        if self.tiers:
            point = canary_point(run_id)
            for share, lineup in self.tiers:
                if point >= share:
                    break
                chosen = lineup
        return chosen

    @property
    def catalogs(self) -> tuple[Catalog, ...]:
        """Every catalog served (the main one first)."""
        return (self.main.catalog, *(lineup.catalog for _, lineup in self.tiers))


def check_tiers(tiers: Sequence[CanaryTier]) -> None:
    """Refuse tiers out of order or with a share outside (0, 1): the choice would be wrong."""
    shares = [tier.share for tier in tiers]
    if any(not 0.0 < share < 1.0 for share in shares) or shares != sorted(shares, reverse=True):
        raise ValueError(f"canary tiers need shares in (0, 1), largest first; got {shares}")
