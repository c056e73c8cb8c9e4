"""Files expire: ``files.create(expires_after=…)`` and ``batches.create(output_expires_after=…)``.

Written by hand to match ``FileRow`` and ``BatchJobRow`` in ``database/tables``;
``tests/database/test_database.py`` checks that autogenerate finds no difference between the
two. Files and batches made before this revision never expire (their new columns are NULL).

Revision ID: 0009
Revises: 0008
Create Date: 2025-01-08 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("files", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("files", sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_files_expires_at", "files", ["expires_at"])
    op.add_column("batch_jobs", sa.Column("output_expires_after_s", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batch_jobs") as jobs:
        jobs.drop_column("output_expires_after_s")
    op.drop_index("ix_files_expires_at", table_name="files")
    with op.batch_alter_table("files") as files:
        files.drop_column("purged_at")
        files.drop_column("expires_at")
