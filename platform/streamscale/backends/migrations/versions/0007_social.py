"""Followers and recommendations (issue 14): watch history, the "categories you watch".

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "watch_history",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("stream_id", sa.Text(), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("watches", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "stream_id", name="pk_watch_history"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_watch_history_user_id_users"),
        sa.ForeignKeyConstraint(["stream_id"], ["streams.id"],
                                name="fk_watch_history_stream_id_streams"),
    )
    op.create_index("ix_watch_history_user_id_last_at_stream_id", "watch_history",
                    ["user_id", "last_at", "stream_id"])


def downgrade() -> None:
    op.drop_index("ix_watch_history_user_id_last_at_stream_id", table_name="watch_history")
    op.drop_table("watch_history")
