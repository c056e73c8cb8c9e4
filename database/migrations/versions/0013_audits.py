"""The audit queue: specialist answers no lead checked, re-asked of the lead off the hot path.

Written by hand to match ``AuditRow`` in ``database/tables``;
``tests/database/test_database.py`` checks that autogenerate finds no difference between them.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = sa.String(64)
STATUS = sa.String(16)
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.create_table(
        "audits",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", NAME, nullable=False),
        sa.Column("specialist", NAME, nullable=False),
        sa.Column("version", NAME, nullable=False),
        sa.Column("judge", NAME, nullable=False),
        sa.Column("source", STATUS, nullable=False),
        sa.Column("messages", json, nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker_id", NAME, nullable=True),
        sa.Column("lease_expires_at", WHEN, nullable=True),
        sa.Column("lead_answer", sa.Text(), nullable=True),
        sa.Column("agreed", sa.Boolean(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("details", json, nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("finished_at", WHEN, nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed')", name="ck_audits_status"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audits_run_id", "audits", ["run_id"], unique=True)
    op.create_index("ix_audits_status_created_at", "audits", ["status", "created_at"])
    op.create_index(
        "ix_audits_specialist_version_finished_at",
        "audits",
        ["specialist", "version", "finished_at"],
    )


def downgrade() -> None:
    op.drop_table("audits")
