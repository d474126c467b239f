"""snapshots: per-project set-up and snapshot settings, and the snapshot image registry

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-01 22:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "snapshot_settings",
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("setup_command", sa.Text(), nullable=True),
        sa.Column("setup_failure", sa.String(length=8), nullable=False),
        sa.Column("setup_timeout_s", sa.Float(), nullable=True),
        sa.Column("work_item", sa.Boolean(), nullable=False),
        sa.Column("project", sa.Boolean(), nullable=False),
        sa.Column("ttl_s", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("project_id"),
    )
    op.create_table(
        "snapshots",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("instance", sa.String(length=100), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("work_item", sa.String(length=200), nullable=False),
        sa.Column("image", sa.String(length=300), nullable=False),
        sa.Column("image_id", sa.String(length=100), nullable=True),
        sa.Column("base_image_id", sa.String(length=100), nullable=True),
        sa.Column("key", sa.String(length=200), nullable=True),
        sa.Column("files_hash", sa.String(length=100), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source_run_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("instance", "project_id", "kind", "work_item"),
    )
    op.create_index("ix_snapshots_project_id", "snapshots", ["project_id"])


def downgrade() -> None:
    op.drop_index("ix_snapshots_project_id", table_name="snapshots")
    op.drop_table("snapshots")
    op.drop_table("snapshot_settings")
