"""The operator console: its sessions, and the runs added up per five minutes and route category
for its overview (``run_rollups``), filled from the runs already stored.

Written by hand to match ``ConsoleSessionRow`` and ``run_rollups`` in ``database/tables``;
``tests/database/test_database.py`` checks that autogenerate finds no difference between them.
The backfill adds runs up with ``database.tables.rollups.rollup_rows``, the function that keeps
the table since (so the two cannot disagree), a chunk of runs at a time.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-10 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from database.tables.base import UTCDateTime
from database.tables.rollups import LATENCY_COLUMNS, RunFigures, add_rollups, rollup_rows

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)
BACKFILL_CHUNK = 10_000

RUNS = sa.table(
    "runs",
    sa.column("id", sa.String),
    sa.column("created_at", UTCDateTime()),
    sa.column("route", sa.Text),
    sa.column("escalated", sa.Boolean),
    sa.column("degraded", sa.Boolean),
    sa.column("failure_kind", sa.String),
    sa.column("cost_usd", sa.Float),
    sa.column("lead_only_cost_usd", sa.Float),
    sa.column("latency_ms", sa.Float),
)


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_keys.id"],
            name="fk_console_sessions_key_id_api_keys",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_console_sessions_expires_at", "console_sessions", ["expires_at"])
    op.create_table(
        "run_rollups",
        sa.Column("bucket_start", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("lead_only_cost_usd", sa.Float(), nullable=False),
        *(
            sa.Column(name, sa.Integer(), server_default=sa.text("0"), nullable=False)
            for name in LATENCY_COLUMNS
        ),
        sa.PrimaryKeyConstraint("bucket_start", "category"),
    )
    _backfill_rollups()


def _backfill_rollups() -> None:
    """Every run stored so far, into ``run_rollups``, by keyset pages of ``(created_at, id)``."""
    bind = op.get_bind()
    upsert = add_rollups(bind.dialect.name)
    order = (RUNS.c.created_at, RUNS.c.id)
    after: tuple[object, object] | None = None
    while True:
        page = sa.select(RUNS).order_by(*order).limit(BACKFILL_CHUNK)
        if after is not None:
            page = page.where(sa.tuple_(*order) > sa.tuple_(*after))
        runs = bind.execute(page).all()
        if not runs:
            return
        bind.execute(
            upsert,
            rollup_rows(
                RunFigures(
                    created_at=run.created_at,
                    route=run.route,
                    escalated=run.escalated,
                    degraded=run.degraded,
                    failed=run.failure_kind is not None,
                    cost_usd=run.cost_usd,
                    lead_only_cost_usd=run.lead_only_cost_usd,
                    latency_ms=run.latency_ms,
                )
                for run in runs
            ),
        )
        after = (runs[-1].created_at, runs[-1].id)


def downgrade() -> None:
    op.drop_table("run_rollups")
    op.drop_index("ix_console_sessions_expires_at", table_name="console_sessions")
    op.drop_table("console_sessions")
