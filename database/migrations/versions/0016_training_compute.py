"""Return on investment: what a distillation job's compute took, and runs found by route.

A job records the seconds its worker spent training and evaluating and the device kind it
trained on (``cpu`` or ``cuda``), so the ledger (``distill/roi.py``) can price them; jobs run
before this revision read 0 seconds on no device. The index on ``runs (route, created_at)``
lets the ledger sum a specialist's accepted answers without reading the whole table.

Written by hand to match ``DistillJobRow`` and ``RunRow`` in ``database/tables``;
``tests/database/test_database.py`` checks that autogenerate finds no difference between them.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-10 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "distill_jobs",
        sa.Column("train_seconds", sa.Float(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column(
        "distill_jobs",
        sa.Column("evaluate_seconds", sa.Float(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column("distill_jobs", sa.Column("device", sa.String(16), nullable=True))
    op.create_index("ix_runs_route_created_at", "runs", ["route", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_runs_route_created_at", table_name="runs")
    with op.batch_alter_table("distill_jobs") as jobs:
        jobs.drop_column("device")
        jobs.drop_column("evaluate_seconds")
        jobs.drop_column("train_seconds")
