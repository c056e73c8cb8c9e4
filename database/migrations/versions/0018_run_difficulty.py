"""Cascade's difficulty skip in the transcript: each run's target share of lead calls, the
difficulty score, the threshold the target mapped to and whether the specialist was skipped.

NULL for runs without a target (and for every run recorded before this revision).

Written by hand to match ``RunRow`` in ``database/tables``; ``tests/database/test_database.py``
checks that autogenerate finds no difference between them.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "runs",
        sa.Column(
            "difficulty", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
        ),
    )


def downgrade() -> None:
    with op.batch_alter_table("runs") as runs:
        runs.drop_column("difficulty")
