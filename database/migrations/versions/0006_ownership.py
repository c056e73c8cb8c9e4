"""Files and batch jobs belong to the API key that made them; admin keys see everyone's.

Written by hand to match ``FileRow``, ``BatchJobRow`` and ``ApiKeyRow`` in
``database/tables``; ``tests/database/test_database.py`` checks that autogenerate finds no
difference between the two. Files and jobs stored before this revision have no owner (NULL):
through the API only admin keys see them; the CLI, which is the operator's, sees everything.

Revision ID: 0006
Revises: 0005
Create Date: 2025-01-06 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OWNED = ("files", "batch_jobs")


def upgrade() -> None:
    op.add_column(
        "api_keys",
        sa.Column("admin", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    for table in _OWNED:
        op.add_column(table, sa.Column("owner_key_id", sa.String(32), nullable=True))
        op.create_index(
            f"ix_{table}_owner_key_id_created_at", table, ["owner_key_id", "created_at"]
        )


def downgrade() -> None:
    for table in reversed(_OWNED):
        op.drop_index(f"ix_{table}_owner_key_id_created_at", table_name=table)
        with op.batch_alter_table(table) as owned:
            owned.drop_column("owner_key_id")
    with op.batch_alter_table("api_keys") as keys:
        keys.drop_column("admin")
