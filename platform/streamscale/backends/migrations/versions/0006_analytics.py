"""Analytics (issue 14): ingest health samples, 1 min / 1 h rollups and their progress,
an index on viewer_samples.at (rollups and retention read them by time) and a partial one
on chat_messages.deleted_at (messages removed in a time range; deleted rows only).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingest_health",
        sa.Column("stream_id", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("interval_s", sa.Float(), nullable=False),
        sa.Column("ingest_kbps", sa.Float(), nullable=False),
        sa.Column("frame_rate_fps", sa.Float(), nullable=False),
        sa.Column("keyframe_interval_s", sa.Float(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("dropped_frames", sa.Integer(), nullable=False),
        sa.Column("transcoder_behind_s", sa.Float(), nullable=False),
        sa.Column("transcoder_load", sa.Float(), nullable=False),
        sa.Column("shed_rungs", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("stream_id", "at", name="pk_ingest_health"),
    )
    op.create_index("ix_ingest_health_at", "ingest_health", ["at"])
    op.create_table(
        "analytics_rollups",
        sa.Column("stream_id", sa.Text(), nullable=False),
        sa.Column("resolution_s", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("viewer_samples", sa.Integer(), nullable=False),
        sa.Column("concurrent_avg", sa.Float(), nullable=False),
        sa.Column("concurrent_max", sa.Integer(), nullable=False),
        sa.Column("unique_viewers", sa.Integer(), nullable=False),
        sa.Column("watch_s", sa.Float(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("by_rendition", sa.Text(), nullable=False),
        sa.Column("chat_messages", sa.Integer(), nullable=False),
        sa.Column("chat_held", sa.Integer(), nullable=False),
        sa.Column("chat_removed", sa.Integer(), nullable=False),
        sa.Column("health_samples", sa.Integer(), nullable=False),
        sa.Column("ingest_kbps", sa.Float(), nullable=False),
        sa.Column("frame_rate_fps", sa.Float(), nullable=False),
        sa.Column("frame_rate_min_fps", sa.Float(), nullable=False),
        sa.Column("keyframe_interval_s", sa.Float(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("dropped_frames", sa.Integer(), nullable=False),
        sa.Column("transcoder_behind_max_s", sa.Float(), nullable=False),
        sa.Column("transcoder_load_max", sa.Float(), nullable=False),
        sa.Column("shed_rungs", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("stream_id", "resolution_s", "at",
                                name="pk_analytics_rollups"),
    )
    op.create_index("ix_analytics_rollups_resolution_s_at", "analytics_rollups",
                    ["resolution_s", "at"])
    op.create_table(
        "analytics_rollup_state",
        sa.Column("resolution_s", sa.Integer(), nullable=False),
        sa.Column("rolled_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("resolution_s", name="pk_analytics_rollup_state"),
    )
    op.create_index("ix_viewer_samples_at", "viewer_samples", ["at"])
    deleted = sa.text("deleted_at IS NOT NULL")
    op.create_index("ix_chat_messages_deleted_at", "chat_messages", ["deleted_at"],
                    sqlite_where=deleted, postgresql_where=deleted)


def downgrade() -> None:
    op.drop_index("ix_chat_messages_deleted_at", table_name="chat_messages")
    op.drop_index("ix_viewer_samples_at", table_name="viewer_samples")
    op.drop_table("analytics_rollup_state")
    op.drop_index("ix_analytics_rollups_resolution_s_at", table_name="analytics_rollups")
    op.drop_table("analytics_rollups")
    op.drop_index("ix_ingest_health_at", table_name="ingest_health")
    op.drop_table("ingest_health")
