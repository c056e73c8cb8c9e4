"""Runs keep their failure's kind and the pre-router's scores; tool calls keep the specialist
they called and its tokens, so a stored run reads back as the result it was.

Written by hand to match ``RunRow`` and ``ToolCallRow`` in ``database/tables``;
``tests/database/test_database.py`` checks that autogenerate finds no difference between the two.
Rows written before this revision keep NULL kinds, scores and specialists and zero tokens:
the store reads a failure without a kind as ``unclassified``.

Revision ID: 0005
Revises: 0004
Create Date: 2025-01-05 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("failure_kind", sa.String(32), nullable=True))
    op.add_column(
        "runs",
        sa.Column(
            "route_scores", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
        ),
    )
    op.add_column("tool_calls", sa.Column("specialist", sa.Text(), nullable=True))
    for tokens in ("slm_prompt_tokens", "slm_completion_tokens"):
        op.add_column(
            "tool_calls",
            sa.Column(tokens, sa.Integer(), nullable=False, server_default=sa.text("0")),
        )


def downgrade() -> None:
    with op.batch_alter_table("tool_calls") as tool_calls:
        tool_calls.drop_column("slm_completion_tokens")
        tool_calls.drop_column("slm_prompt_tokens")
        tool_calls.drop_column("specialist")
    with op.batch_alter_table("runs") as runs:
        runs.drop_column("route_scores")
        runs.drop_column("failure_kind")
