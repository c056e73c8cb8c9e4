"""Runs that hand the caller's tool calls over keep their turn, and the run that continues one
says which: a tool conversation can be continued whole and followed turn by turn.

Written by hand to match ``RunRow`` and ``HandedOverCallRow`` in ``database/tables``;
``tests/database/test_database.py`` checks that autogenerate finds no difference between the
two. Runs recorded before this revision kept no turn and continue nothing: their columns are
NULL, and a follow-up to their calls is taken as the caller's own history.

Revision ID: 0011
Revises: 0010
Create Date: 2025-01-10 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.add_column("runs", sa.Column("lead_turn", json, nullable=True))
    op.add_column("runs", sa.Column("owner_key_id", sa.String(32), nullable=True))
    op.add_column("runs", sa.Column("continues_run_id", sa.String(64), nullable=True))
    op.create_index("ix_runs_continues_run_id", "runs", ["continues_run_id"])
    op.create_table(
        "handed_over_calls",
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_handed_over_calls_run_id_runs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("call_id"),
    )


def downgrade() -> None:
    op.drop_table("handed_over_calls")
    op.drop_index("ix_runs_continues_run_id", table_name="runs")
    with op.batch_alter_table("runs") as runs:
        runs.drop_column("continues_run_id")
        runs.drop_column("owner_key_id")
        runs.drop_column("lead_turn")
