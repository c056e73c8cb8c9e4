"""The operator console: its sessions, and a covering index for its overview of the runs.

Written by hand to match ``ConsoleSessionRow`` and ``RunRow``'s ``ix_runs_overview`` in
``database/tables``; ``tests/database/test_database.py`` checks that autogenerate finds no
difference between them.

Revision ID: 0018
Revises: 0013
Create Date: 2026-12-10 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


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
    op.create_index(
        "ix_runs_overview",
        "runs",
        [
            "created_at",
            "route",
            "degraded",
            "escalated",
            "failure_kind",
            "cost_usd",
            "lead_only_cost_usd",
            "latency_ms",
        ],
    )


def downgrade() -> None:
    op.drop_index("ix_runs_overview", table_name="runs")
    op.drop_index("ix_console_sessions_expires_at", table_name="console_sessions")
    op.drop_table("console_sessions")
