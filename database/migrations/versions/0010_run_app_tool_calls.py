"""Runs keep the calls of the caller's own tools they answered with.

Written by hand to match ``RunRow`` in ``database/tables``; ``tests/database/test_database.py``
checks that autogenerate finds no difference between the two. Runs recorded before this revision
answered no tool calls (the app's tools did not exist): their column is NULL.

Revision ID: 0010
Revises: 0009
Create Date: 2025-01-09 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.add_column("runs", sa.Column("app_tool_calls", json, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as runs:
        runs.drop_column("app_tool_calls")
