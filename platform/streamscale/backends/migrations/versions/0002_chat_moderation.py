"""Chat pipeline and moderation: message seq/status/idempotency key, room counters, roles,
bans, timeouts, room settings, banned words, the moderation log, appeals.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Existing chat rows are backfilled: client_msg_id = id, status "visible", seq numbered
per room in (created_at, id) order, and each room's counter set to its last seq. On
SQLite the NOT NULL and unique changes rebuild chat_messages (batch mode).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _user_fk(column: str, table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], ["users.id"], name=f"fk_{table}_{column}_users")


def upgrade() -> None:
    _upgrade_chat_messages()
    op.create_table(
        "channel_roles",
        sa.Column("channel_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("channel_id", "user_id", name="pk_channel_roles"),
        _user_fk("channel_id", "channel_roles"),
        _user_fk("user_id", "channel_roles"),
        sa.CheckConstraint("role IN ('owner', 'moderator')", name="ck_channel_roles_role"),
    )
    op.create_table(
        "chat_bans",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("channel_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("banned_by", sa.Text(), nullable=False),
        _ts("created_at"),
        _ts("lifted_at", nullable=True),
        sa.Column("lifted_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_chat_bans"),
        _user_fk("channel_id", "chat_bans"),
        _user_fk("user_id", "chat_bans"),
    )
    active = sa.text("lifted_at IS NULL")
    op.create_index(
        "uq_chat_bans_active",
        "chat_bans",
        ["channel_id", "user_id"],
        unique=True,
        sqlite_where=active,
        postgresql_where=active,
    )
    op.create_index(
        "ix_chat_bans_channel_id_created_at_id", "chat_bans", ["channel_id", "created_at", "id"]
    )
    op.create_table(
        "chat_timeouts",
        sa.Column("channel_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        _ts("until"),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("channel_id", "user_id", name="pk_chat_timeouts"),
        _user_fk("channel_id", "chat_timeouts"),
        _user_fk("user_id", "chat_timeouts"),
    )
    op.create_table(
        "chat_settings",
        sa.Column("channel_id", sa.Text(), nullable=False),
        sa.Column("slow_mode_s", sa.Integer(), nullable=False),
        sa.Column("followers_only_min_age_s", sa.Integer(), nullable=True),
        sa.Column("link_policy", sa.Text(), nullable=False),
        sa.Column("regex_filters", sa.Text(), nullable=False),
        _ts("updated_at"),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("channel_id", name="pk_chat_settings"),
        _user_fk("channel_id", "chat_settings"),
        sa.CheckConstraint(
            "link_policy IN ('allow', 'hold', 'block')", name="ck_chat_settings_link_policy"
        ),
    )
    op.create_table(
        "banned_words",
        sa.Column("channel_id", sa.Text(), nullable=True),
        sa.Column("word", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("channel_id", "word", name="uq_banned_words_channel_id_word"),
    )
    is_global = sa.text("channel_id IS NULL")
    op.create_index(
        "uq_banned_words_global_word",
        "banned_words",
        ["word"],
        unique=True,
        sqlite_where=is_global,
        postgresql_where=is_global,
    )
    op.create_table(
        "moderation_log",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("channel_id", sa.Text(), nullable=True),
        sa.Column("actor_id", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("target_user_id", sa.Text(), nullable=True),
        sa.Column("target_message_id", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("details", sa.Text(), nullable=True),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_moderation_log"),
    )
    op.create_index(
        "ix_moderation_log_channel_id_created_at_id",
        "moderation_log",
        ["channel_id", "created_at", "id"],
    )
    op.create_table(
        "ban_appeals",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("ban_id", sa.Text(), nullable=False),
        sa.Column("channel_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        _ts("created_at"),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.Text(), nullable=True),
        _ts("decided_at", nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ban_appeals"),
        sa.ForeignKeyConstraint(
            ["ban_id"], ["chat_bans.id"], name="fk_ban_appeals_ban_id_chat_bans"
        ),
        sa.UniqueConstraint("ban_id", name="uq_ban_appeals_ban_id"),
        sa.CheckConstraint(
            "status IN ('pending', 'upheld', 'lifted')", name="ck_ban_appeals_status"
        ),
    )
    op.create_index(
        "ix_ban_appeals_channel_id_created_at_id", "ban_appeals", ["channel_id", "created_at", "id"]
    )


def _upgrade_chat_messages() -> None:
    """Add the columns nullable, backfill them, then tighten (a rebuild on SQLite)."""
    op.create_table(
        "chat_rooms",
        sa.Column("stream_id", sa.Text(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("stream_id", name="pk_chat_rooms"),
    )
    for column in (
        sa.Column("client_msg_id", sa.Text(), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("moderation", sa.Text(), nullable=True),
        sa.Column("deleted_by", sa.Text(), nullable=True),
        _ts("deleted_at", nullable=True),
    ):
        op.add_column("chat_messages", column)
    # UPDATE ... FROM: PostgreSQL, and SQLite from 3.33 (the store already needs 3.35).
    op.execute(
        """
        UPDATE chat_messages SET client_msg_id = id, status = 'visible', seq = numbered.n
        FROM (
            SELECT id AS message_id,
                   row_number() OVER (PARTITION BY stream_id ORDER BY created_at, id) AS n
            FROM chat_messages
        ) AS numbered
        WHERE chat_messages.id = numbered.message_id
        """
    )
    op.execute(
        "INSERT INTO chat_rooms (stream_id, last_seq) "
        "SELECT stream_id, max(seq) FROM chat_messages GROUP BY stream_id"
    )
    op.drop_index("ix_chat_messages_stream_id_created_at_id", table_name="chat_messages")
    with op.batch_alter_table("chat_messages") as batch:
        for name in ("client_msg_id", "seq", "status"):
            batch.alter_column(name, nullable=False)
        batch.create_unique_constraint(
            "uq_chat_messages_client_msg_id", ["stream_id", "user_id", "client_msg_id"]
        )
        batch.create_unique_constraint("uq_chat_messages_stream_id_seq", ["stream_id", "seq"])
        batch.create_check_constraint(
            "ck_chat_messages_status", "status IN ('visible', 'held', 'deleted')"
        )
    op.create_index(
        "ix_chat_messages_status_created_at_id", "chat_messages", ["status", "created_at", "id"]
    )


def downgrade() -> None:
    for table in (
        "ban_appeals",
        "moderation_log",
        "banned_words",
        "chat_settings",
        "chat_timeouts",
        "chat_bans",
        "channel_roles",
        "chat_rooms",
    ):
        op.drop_table(table)
    op.drop_index("ix_chat_messages_status_created_at_id", table_name="chat_messages")
    with op.batch_alter_table("chat_messages") as batch:
        batch.drop_constraint("ck_chat_messages_status", type_="check")
        batch.drop_constraint("uq_chat_messages_stream_id_seq", type_="unique")
        batch.drop_constraint("uq_chat_messages_client_msg_id", type_="unique")
        for name in ("deleted_at", "deleted_by", "moderation", "status", "seq", "client_msg_id"):
            batch.drop_column(name)
    op.create_index(
        "ix_chat_messages_stream_id_created_at_id",
        "chat_messages",
        ["stream_id", "created_at", "id"],
    )
