"""Responses of ``/v1/responses`` are kept for ``previous_response_id`` and retrieval.

Written by hand to match ``StoredResponseRow`` in ``database/tables``;
``tests/database/test_database.py`` checks that autogenerate finds no difference between the
two.

Revision ID: 0012
Revises: 0011
Create Date: 2025-01-10 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.create_table(
        "stored_responses",
        sa.Column("id", sa.String(70), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("previous_response_id", sa.String(70), nullable=True),
        sa.Column("owner_key_id", sa.String(32), nullable=True),
        sa.Column("conversation", json, nullable=False),
        sa.Column("body", json, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_stored_responses_created_at", "stored_responses", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_stored_responses_created_at", table_name="stored_responses")
    op.drop_table("stored_responses")
