"""Batch jobs: uploaded files, jobs, their items, and the workers that claim them.

Written by hand to match ``FileRow``, ``BatchJobRow``, ``BatchItemRow`` and ``WorkerRow`` in
``database/tables``; ``tests/orchestrator/test_store.py`` checks that autogenerate
finds no difference between the two.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FILE_ID = sa.String(40)
BATCH_ID = sa.String(40)
STATUS = sa.String(16)
WHEN = sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _file_reference(column: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], ["files.id"], name=f"fk_batch_jobs_{column}_files", ondelete="SET NULL"
    )


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", FILE_ID, nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_files_created_at", "files", ["created_at"])

    op.create_table(
        "batch_jobs",
        sa.Column("id", BATCH_ID, nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(32), nullable=False),
        sa.Column("input_name", sa.Text(), nullable=False),
        sa.Column("input_file_id", FILE_ID, nullable=True),
        sa.Column("output_file_id", FILE_ID, nullable=True),
        sa.Column("error_file_id", FILE_ID, nullable=True),
        sa.Column("completion_window", sa.String(16), nullable=False),
        sa.Column("metadata", _json(), nullable=True),
        sa.Column("errors", _json(), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("started_at", WHEN, nullable=True),
        sa.Column("cancel_requested_at", WHEN, nullable=True),
        sa.Column("finished_at", WHEN, nullable=True),
        sa.CheckConstraint(
            "status IN ('validating', 'failed', 'in_progress', 'completed', 'cancelling', "
            "'cancelled')",
            name="ck_batch_jobs_status",
        ),
        _file_reference("input_file_id"),
        _file_reference("output_file_id"),
        _file_reference("error_file_id"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_batch_jobs_status_created_at", "batch_jobs", ["status", "created_at"])
    op.create_index("ix_batch_jobs_created_at", "batch_jobs", ["created_at"])

    op.create_table(
        "batch_items",
        sa.Column("job_id", BATCH_ID, nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("custom_id", sa.String(512), nullable=True),
        sa.Column("body", _json(), nullable=True),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("claims", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(64), nullable=True),
        sa.Column("lease_expires_at", WHEN, nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("lead_tokens", sa.Integer(), nullable=False),
        sa.Column("slm_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("lead_only_cost_usd", sa.Float(), nullable=False),
        sa.Column("finished_at", WHEN, nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')",
            name="ck_batch_items_status",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["batch_jobs.id"],
            name="fk_batch_items_job_id_batch_jobs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", "line"),
    )
    op.create_index(
        "ix_batch_items_job_id_custom_id", "batch_items", ["job_id", "custom_id"], unique=True
    )
    op.create_index(
        "ix_batch_items_job_id_status_line", "batch_items", ["job_id", "status", "line"]
    )
    op.create_index("ix_batch_items_worker_id", "batch_items", ["worker_id"])

    op.create_table(
        "workers",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("heartbeat_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_workers_heartbeat_at", "workers", ["heartbeat_at"])


def downgrade() -> None:
    op.drop_table("workers")
    op.drop_table("batch_items")
    op.drop_table("batch_jobs")
    op.drop_table("files")
