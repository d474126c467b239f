"""outbox notices: entries that follow from no run (a trigger ignored over a cap or budget)

``outbox.run_id`` becomes nullable; ``number`` (the issue/PR) and ``dedup_key`` (unique per
project: the same cap on the same PR says so once) are added.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 00:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("run_id", existing_type=sa.String(length=32), nullable=True)
        batch.add_column(sa.Column("number", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("dedup_key", sa.String(length=200), nullable=True))
        batch.create_index("ux_outbox_dedup", ["project_id", "dedup_key"], unique=True)


def downgrade() -> None:
    op.execute("DELETE FROM outbox WHERE run_id IS NULL")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ux_outbox_dedup")
        batch.drop_column("dedup_key")
        batch.drop_column("number")
        batch.alter_column("run_id", existing_type=sa.String(length=32), nullable=False)
