"""agents: per-project overrides, project credentials, engine figures and outputs on runs

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 21:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("agent_configs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("overrides", JSON, server_default=sa.text("'{}'"), nullable=False)
        )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("engine_usage", JSON, nullable=True))
        batch_op.add_column(sa.Column("outputs", JSON, nullable=True))
    op.create_table(
        "project_credentials",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("value_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "name"),
    )


def downgrade() -> None:
    op.drop_table("project_credentials")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("outputs")
        batch_op.drop_column("engine_usage")
    with op.batch_alter_table("agent_configs", schema=None) as batch_op:
        batch_op.drop_column("overrides")
