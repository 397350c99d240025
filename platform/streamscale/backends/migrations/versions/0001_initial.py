"""Initial schema: users, streams, chat, followers, analytics, signing keys, refresh tokens.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Written out in full rather than from `_tables.metadata`, so later edits to the tables
never rewrite history; tests check that head still matches the metadata.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("username_key", sa.Text(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("bio", sa.Text(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username_key", name="uq_users_username_key"),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )
    op.create_table(
        "streams",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("quality", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.Text(), nullable=False),
        _ts("key_rotated_at"),
        _ts("created_at"),
        _ts("started_at", nullable=True),
        _ts("ended_at", nullable=True),
        sa.Column("viewer_count", sa.Integer(), nullable=False),
        sa.Column("peak_viewers", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_streams"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_streams_user_id_users"),
        sa.UniqueConstraint("key_hash", name="uq_streams_key_hash"),
        sa.CheckConstraint("status IN ('created', 'live', 'ended')", name="ck_streams_status"),
    )
    op.create_index("ix_streams_user_id_created_at", "streams", ["user_id", "created_at"])
    op.create_index(
        "ix_streams_status_category_created_at", "streams", ["status", "category", "created_at"]
    )
    op.create_table(
        "chat_messages",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("stream_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_chat_messages"),
    )
    op.create_index(
        "ix_chat_messages_stream_id_created_at_id",
        "chat_messages",
        ["stream_id", "created_at", "id"],
    )
    op.create_table(
        "followers",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("follower_id", sa.Text(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("user_id", "follower_id", name="pk_followers"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_followers_user_id_users"),
        sa.ForeignKeyConstraint(
            ["follower_id"], ["users.id"], name="fk_followers_follower_id_users"
        ),
    )
    op.create_index("ix_followers_follower_id", "followers", ["follower_id"])
    op.create_table(
        "analytics",
        sa.Column("stream_id", sa.Text(), nullable=False),
        _ts("ts"),
        sa.Column("viewers", sa.Integer(), nullable=False),
        sa.Column("chat_messages", sa.Integer(), nullable=False),
        sa.Column("ingest_kbps", sa.Integer(), nullable=False),
    )
    op.create_index("ix_analytics_stream_id_ts", "analytics", ["stream_id", "ts"])
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.Text(), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        _ts("created_at"),
        _ts("retires_at", nullable=True),
        sa.PrimaryKeyConstraint("kid", name="pk_signing_keys"),
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("family_id", sa.Text(), nullable=False),
        _ts("created_at"),
        _ts("expires_at"),
        _ts("used_at", nullable=True),
        _ts("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name="pk_refresh_tokens"),
    )
    op.create_index("ix_refresh_tokens_family_id", "refresh_tokens", ["family_id"])


def downgrade() -> None:
    for table in (
        "refresh_tokens",
        "signing_keys",
        "analytics",
        "followers",
        "chat_messages",
        "streams",
        "users",
    ):
        op.drop_table(table)
