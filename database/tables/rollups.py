"""Runs added up per five minutes and route category (migration 0017), so the console's overview
reads a few thousand small rows for a week instead of every run in it.

A row is written in the same transaction as the run it counts (``TranscriptStore.save_run``), so
the rollup is never behind the runs. Latency is kept as a histogram of fixed, geometric bins
(each 2^¼ ≈ 19 % wider than the last), one integer column per bin: percentiles of any window are
read from the summed bins, to within one bin's width, at a cost that does not grow with traffic.

:func:`rollup_rows` is the one place runs become rollup rows: the store, the migration's backfill
and the benchmark all call it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Float, Integer, Table, Text, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from database.tables.base import Base

ROLLUP_BUCKET_S = 300
"""A rollup row's span; every overview bucket width is a multiple of it."""
LATENCY_BIN_RATIO = 2**0.25
LATENCY_BINS = 80
"""Bin 0 holds latencies under 1 ms; bin ``i`` holds ``[r^(i-1), r^i)`` ms for ``r`` the ratio;
the last bin holds everything from ``r^78`` ms (≈ 12 minutes) up."""
LATENCY_COLUMNS = tuple(f"latency_{i:02d}" for i in range(LATENCY_BINS))

LEAD = "lead"
"""The category of runs the lead answered (``lead``, ``router``, ``cascade:lead``,
``cascade:skipped:NAME``)."""
ESCALATED = "escalated"
DEGRADED = "degraded"
SPECIALIST_PREFIX = "specialist:"

run_rollups = Table(
    "run_rollups",
    Base.metadata,
    # Unix seconds, a multiple of ROLLUP_BUCKET_S: integer arithmetic buckets it the same way
    # on every dialect.
    Column("bucket_start", BigInteger, primary_key=True, autoincrement=False),
    Column("category", Text, primary_key=True),
    Column("runs", Integer, nullable=False),
    Column("errors", Integer, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("lead_only_cost_usd", Float, nullable=False),
    *(Column(name, Integer, nullable=False, server_default=text("0")) for name in LATENCY_COLUMNS),
)


def route_category(route: str, *, escalated: bool, degraded: bool) -> str:
    """Where a run's answer came from: ``degraded`` (a fallback), ``escalated`` (a specialist's
    draft the lead replaced), ``specialist:NAME`` (accepted without the lead), else ``lead``."""
    if degraded:
        return DEGRADED
    if escalated:
        return ESCALATED
    for answered_by in ("cascade:accepted:", "slm:"):
        if route.startswith(answered_by):
            return SPECIALIST_PREFIX + route.removeprefix(answered_by)
    return LEAD


def latency_bin(latency_ms: float) -> int:
    """The histogram bin of a latency (see :data:`LATENCY_BINS`)."""
    if not latency_ms >= 1.0:  # NaN and negatives too
        return 0
    return min(LATENCY_BINS - 1, 1 + math.floor(math.log(latency_ms, LATENCY_BIN_RATIO)))


def latency_bin_bounds(index: int) -> tuple[float, float]:
    """``[low, high)`` of a bin in ms; the last bin's ``high`` is infinite."""
    low = 0.0 if index == 0 else LATENCY_BIN_RATIO ** (index - 1)
    high = math.inf if index == LATENCY_BINS - 1 else LATENCY_BIN_RATIO**index
    return low, high


@dataclass(frozen=True, slots=True)
class RunFigures:
    """What a rollup keeps of one run."""

    created_at: datetime
    route: str
    escalated: bool
    degraded: bool
    failed: bool
    cost_usd: float
    lead_only_cost_usd: float
    latency_ms: float


def rollup_rows(runs: Iterable[RunFigures]) -> list[dict[str, Any]]:
    """The runs added up by (bucket, category): rows to add to ``run_rollups`` (every column
    present, so many go in one statement)."""
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    for run in runs:
        bucket = math.floor(run.created_at.timestamp() / ROLLUP_BUCKET_S) * ROLLUP_BUCKET_S
        category = route_category(run.route, escalated=run.escalated, degraded=run.degraded)
        row = rows.get((bucket, category))
        if row is None:
            row = rows[bucket, category] = {
                "bucket_start": bucket,
                "category": category,
                "runs": 0,
                "errors": 0,
                "cost_usd": 0.0,
                "lead_only_cost_usd": 0.0,
                **dict.fromkeys(LATENCY_COLUMNS, 0),
            }
        row["runs"] += 1
        row["errors"] += int(run.failed)
        row["cost_usd"] += run.cost_usd
        row["lead_only_cost_usd"] += run.lead_only_cost_usd
        row[LATENCY_COLUMNS[latency_bin(run.latency_ms)]] += 1
    return list(rows.values())


def add_rollups(dialect: str) -> Insert:
    """The statement that adds :func:`rollup_rows` to the table: an insert that, where the
    (bucket, category) row exists, adds to it instead (``ON CONFLICT … DO UPDATE``, atomic on
    PostgreSQL under concurrent writers, serialised by the write queue on SQLite)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(run_rollups)
    added = ("runs", "errors", "cost_usd", "lead_only_cost_usd", *LATENCY_COLUMNS)
    return statement.on_conflict_do_update(
        index_elements=["bucket_start", "category"],
        set_={name: run_rollups.c[name] + statement.excluded[name] for name in added},
    )
