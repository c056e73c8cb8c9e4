"""A distillation job's training progress (step, total, loss curve) for the console's ETA and
loss curve; jobs trained before this revision have none.

Written by hand to match ``DistillJobRow`` in ``database/tables``;
``tests/database/test_database.py`` checks that autogenerate finds no difference between them.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.add_column("distill_jobs", sa.Column("training", json, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("distill_jobs") as jobs:
        jobs.drop_column("training")
