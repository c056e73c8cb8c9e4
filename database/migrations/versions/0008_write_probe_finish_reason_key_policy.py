"""Runs keep their finish reason; keys carry a degradation policy; a table for write probes.

Written by hand to match ``RunRow``, ``ApiKeyRow`` and ``WriteProbeRow`` in
``database/tables``; ``tests/database/test_database.py`` checks that autogenerate finds no
difference between the two. Runs recorded before this revision did not keep their finish reason;
they read ``stop``, which is what they reported then.

Revision ID: 0008
Revises: 0007
Create Date: 2025-01-07 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "runs",
        sa.Column("finish_reason", sa.String(16), nullable=False, server_default=sa.text("'stop'")),
    )
    op.add_column("api_keys", sa.Column("on_degraded", sa.String(16), nullable=True))
    op.create_table(
        "write_probes",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("probed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("write_probes")
    with op.batch_alter_table("api_keys") as keys:
        keys.drop_column("on_degraded")
    with op.batch_alter_table("runs") as runs:
        runs.drop_column("finish_reason")
