"""runs: batch id and index, tags, metadata, accepted time (the burst buffer)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("batch_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("batch_index", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("tags", JSON, server_default=sa.text("'[]'"), nullable=False))
        batch_op.add_column(sa.Column("run_metadata", JSON, nullable=True))
        batch_op.add_column(sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_runs_batch", ["batch_id", "batch_index"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_batch")
        batch_op.drop_column("accepted_at")
        batch_op.drop_column("run_metadata")
        batch_op.drop_column("tags")
        batch_op.drop_column("batch_index")
        batch_op.drop_column("batch_id")
