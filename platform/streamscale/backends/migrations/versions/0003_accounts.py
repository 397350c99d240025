"""Account deletion and platform admins: users.deleted_at (a deleted account's tombstone)
and the platform_admins table (who may edit the global banned-word list).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "platform_admins",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_platform_admins"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_platform_admins_user_id_users"
        ),
    )


def downgrade() -> None:
    op.drop_table("platform_admins")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("deleted_at")
