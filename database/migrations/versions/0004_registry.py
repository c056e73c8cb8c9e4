"""The specialist registry (proposals, registered specialists, versions, the generation counter)
and distillation jobs.

Written by hand to match ``RegistryStateRow``, ``ProposalRow``, ``RegisteredSpecialistRow``,
``SpecialistVersionRow`` and ``DistillJobRow`` in ``database/tables``;
``tests/orchestrator/test_store.py`` checks that autogenerate finds no difference between the two.

Revision ID: 0004
Revises: 0003
Create Date: 2025-01-04 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = sa.String(64)
STATUS = sa.String(16)
WHEN = sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    registry_state = op.create_table(
        "registry_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(registry_state, [{"id": 1, "generation": 0}])

    op.create_table(
        "specialist_proposals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("examples", _json(), nullable=False),
        sa.Column("run_ids", _json(), nullable=False),
        sa.Column("run_count", sa.Integer(), nullable=False),
        sa.Column("lead_cost_usd", sa.Float(), nullable=False),
        sa.Column("window_days", sa.Float(), nullable=False),
        sa.Column("monthly_savings_usd", sa.Float(), nullable=False),
        sa.Column("validator", NAME, nullable=False),
        sa.Column("max_tokens", sa.Integer(), nullable=False),
        sa.Column("nearest_specialist", NAME, nullable=True),
        sa.Column("nearest_score", sa.Float(), nullable=True),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'accepted', 'dismissed')", name="ck_specialist_proposals_status"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_specialist_proposals_status", "specialist_proposals", ["status"])

    op.create_table(
        "specialists",
        sa.Column("name", NAME, nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("system_prompt", sa.Text(), nullable=False),
        sa.Column("validator", NAME, nullable=False),
        sa.Column("examples", _json(), nullable=False),
        sa.Column("max_tokens", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["specialist_proposals.id"],
            name="fk_specialists_proposal_id_specialist_proposals",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("name"),
    )

    op.create_table(
        "specialist_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("specialist", NAME, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("adapter_path", sa.Text(), nullable=False),
        sa.Column("adapter_sha256", sa.String(64), nullable=False),
        sa.Column("base_model", sa.Text(), nullable=False),
        sa.Column("lora_rank", sa.Integer(), nullable=False),
        sa.Column("dataset_path", sa.Text(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("gate_passed", sa.Boolean(), nullable=True),
        sa.Column("metrics", _json(), nullable=False),
        sa.Column("replaces_id", sa.Integer(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("evaluated_at", WHEN, nullable=True),
        sa.Column("promoted_at", WHEN, nullable=True),
        sa.Column("retired_at", WHEN, nullable=True),
        sa.CheckConstraint(
            "status IN ('candidate', 'active', 'retired')", name="ck_specialist_versions_status"
        ),
        sa.ForeignKeyConstraint(
            ["replaces_id"],
            ["specialist_versions.id"],
            name="fk_specialist_versions_replaces_id_specialist_versions",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_specialist_versions_specialist_version",
        "specialist_versions",
        ["specialist", "version"],
        unique=True,
    )
    op.create_index(
        "ix_specialist_versions_one_active",
        "specialist_versions",
        ["specialist"],
        unique=True,
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    )

    op.create_table(
        "distill_jobs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("specialist", NAME, nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=True),
        sa.Column("trigger", STATUS, nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("stage", STATUS, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(64), nullable=True),
        sa.Column("lease_expires_at", WHEN, nullable=True),
        sa.Column("dataset_path", sa.Text(), nullable=True),
        sa.Column("adapter_path", sa.Text(), nullable=True),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("started_at", WHEN, nullable=True),
        sa.Column("finished_at", WHEN, nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name="ck_distill_jobs_status",
        ),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["specialist_proposals.id"],
            name="fk_distill_jobs_proposal_id_specialist_proposals",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["specialist_versions.id"],
            name="fk_distill_jobs_version_id_specialist_versions",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_distill_jobs_status_created_at", "distill_jobs", ["status", "created_at"])
    op.create_index(
        "ix_distill_jobs_one_open",
        "distill_jobs",
        ["specialist"],
        unique=True,
        sqlite_where=sa.text("status IN ('queued', 'running')"),
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )


def downgrade() -> None:
    op.drop_table("distill_jobs")
    op.drop_table("specialist_versions")
    op.drop_table("specialists")
    op.drop_table("specialist_proposals")
    op.drop_table("registry_state")
