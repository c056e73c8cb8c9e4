"""The registry's lifecycle: canaries, rejected versions, why a version retired, an event per
change, and paused specialists.

Written by hand to match ``SpecialistVersionRow``, ``SpecialistEventRow`` and
``PausedSpecialistRow`` in ``database/tables``; ``tests/database/test_database.py`` checks that
autogenerate finds no difference between them. Versions stored before this revision keep their
status; a retired one has no recorded reason (NULL), and the history starts empty.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 00:00:00
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = sa.String(64)
WHEN = sa.DateTime(timezone=True)
STATUS_CHECK = "ck_specialist_versions_status"
OLD_STATUSES = "status IN ('candidate', 'active', 'retired')"
NEW_STATUSES = "status IN ('candidate', 'canary', 'active', 'retired', 'rejected')"


REFERENCES = (("specialist_versions", "replaces_id"), ("distill_jobs", "version_id"))
"""The columns that point at ``specialist_versions`` rows (all ``ON DELETE SET NULL``)."""


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    with _references_kept(), op.batch_alter_table("specialist_versions") as versions:
        versions.drop_constraint(STATUS_CHECK, type_="check")
        versions.create_check_constraint(STATUS_CHECK, sa.text(NEW_STATUSES))
        versions.add_column(sa.Column("canary_share", sa.Float(), nullable=True))
        versions.add_column(sa.Column("retire_reason", sa.String(32), nullable=True))
    op.create_index(
        "ix_specialist_versions_one_canary",
        "specialist_versions",
        ["specialist"],
        unique=True,
        sqlite_where=sa.text("status = 'canary'"),
        postgresql_where=sa.text("status = 'canary'"),
    )
    op.create_table(
        "specialist_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("specialist", NAME, nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("figures", json, nullable=False),
        sa.Column("actor", NAME, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["specialist_versions.id"],
            name="fk_specialist_events_version_id_specialist_versions",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_specialist_events_specialist_created_at",
        "specialist_events",
        ["specialist", "created_at"],
    )
    op.create_index("ix_specialist_events_created_at", "specialist_events", ["created_at"])
    op.create_table(
        "paused_specialists",
        sa.Column("name", NAME, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("paused_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("paused_specialists")
    op.drop_table("specialist_events")
    op.drop_index("ix_specialist_versions_one_canary", table_name="specialist_versions")
    # canaries and rejected versions have no status before this revision: they read as retired
    op.execute(
        "UPDATE specialist_versions SET status = 'retired' WHERE status IN ('canary', 'rejected')"
    )
    with _references_kept(), op.batch_alter_table("specialist_versions") as versions:
        versions.drop_column("retire_reason")
        versions.drop_column("canary_share")
        versions.drop_constraint(STATUS_CHECK, type_="check")
        versions.create_check_constraint(STATUS_CHECK, sa.text(OLD_STATUSES))


@contextmanager
def _references_kept() -> Iterator[None]:
    """Keep what points at ``specialist_versions`` across SQLite's table copy.

    SQLite cannot alter a CHECK constraint, so batch mode copies the table and drops the old
    one; with foreign keys on (every connection of ours, and ``PRAGMA foreign_keys`` cannot be
    turned off inside the migration's transaction) that drop runs the ``ON DELETE SET NULL``
    actions, which would erase every version's ``replaces_id`` and every job's
    ``version_id``. They are read before and written back after. PostgreSQL alters the table
    in place and needs none of this.
    """
    connection = op.get_bind()
    if connection.dialect.name != "sqlite":
        yield
        return
    kept = {
        (table, column): connection.execute(
            sa.text(f"SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL")
        ).all()
        for table, column in REFERENCES
    }
    yield
    for (table, column), rows in kept.items():
        for row_id, value in rows:
            connection.execute(
                sa.text(f"UPDATE {table} SET {column} = :value WHERE id = :id"),
                {"value": value, "id": row_id},
            )
