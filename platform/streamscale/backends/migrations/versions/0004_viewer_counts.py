"""Viewer counts (issue 12): streams.unique_viewers and streams.viewers_by_rendition beside
viewer_count and peak_viewers, and viewer_samples, the counts kept over time.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Server defaults fill the existing rows (SQLite needs one to add a NOT NULL column).
    op.add_column("streams", sa.Column("unique_viewers", sa.Integer(), nullable=False,
                                       server_default="0"))
    op.add_column("streams", sa.Column("viewers_by_rendition", sa.Text(), nullable=False,
                                       server_default="{}"))
    op.create_table(
        "viewer_samples",
        sa.Column("stream_id", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("interval_s", sa.Float(), nullable=False),
        sa.Column("concurrent", sa.Integer(), nullable=False),
        sa.Column("unique_viewers", sa.Integer(), nullable=False),
        sa.Column("by_rendition", sa.Text(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("watch_s", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("stream_id", "at", name="pk_viewer_samples"),
    )


def downgrade() -> None:
    op.drop_table("viewer_samples")
    with op.batch_alter_table("streams") as batch:
        batch.drop_column("viewers_by_rendition")
        batch.drop_column("unique_viewers")
