"""Batch jobs are validated off the request path, by a worker holding the job under a lease.

Written by hand to match ``BatchJobRow`` in ``database/tables``;
``tests/database/test_database.py`` checks that autogenerate finds no difference between the two.
Jobs stored before this revision have no validator and no claims: one still ``validating`` is
claimed by the next worker, which loads its input again from the first line.

Revision ID: 0007
Revises: 0006
Create Date: 2025-01-07 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("batch_jobs", sa.Column("validator_id", sa.String(64), nullable=True))
    op.add_column(
        "batch_jobs",
        sa.Column("validation_lease_expires_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "batch_jobs",
        sa.Column("validation_claims", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    with op.batch_alter_table("batch_jobs") as jobs:
        jobs.drop_column("validation_claims")
        jobs.drop_column("validation_lease_expires_at")
        jobs.drop_column("validator_id")
