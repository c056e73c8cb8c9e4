"""Audits keep the confidence of the answer they check, so thresholds can be re-fitted from
audited live data (``distill.refit``).

Written by hand to match ``AuditRow`` in ``database/tables``; ``tests/database/test_database.py``
checks that autogenerate finds no difference between the two. Audits queued before this
revision have no confidence (NULL): a re-fit leaves them out.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-10 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audits", sa.Column("confidence", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audits") as audits:
        audits.drop_column("confidence")
