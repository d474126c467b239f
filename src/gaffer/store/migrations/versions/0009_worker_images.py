"""worker images: a project's own worker image, its validation status and pinned digest (issue 13)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 22:15:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("worker_image", sa.String(length=512), nullable=True))
        batch.add_column(sa.Column("worker_image_status", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("worker_image_digest", sa.String(length=600), nullable=True))
        batch.add_column(sa.Column("worker_image_error", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("worker_image_registry_auth_encrypted", sa.LargeBinary(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("worker_image_registry_auth_encrypted")
        batch.drop_column("worker_image_error")
        batch.drop_column("worker_image_digest")
        batch.drop_column("worker_image_status")
        batch.drop_column("worker_image")
