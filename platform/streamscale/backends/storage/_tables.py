"""The schema in SQLAlchemy Core: the single source the migrations are checked against.

Constraints are named explicitly (and carry `info={"field": ...}`) so an IntegrityError
maps to `Conflict(field)` on both dialects: PostgreSQL reports the constraint name,
SQLite the constrained columns.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

STREAM_STATUSES = ("created", "live", "ended")
CHAT_STATUSES = ("visible", "held", "deleted")
CHANNEL_ROLES = ("owner", "moderator")
LINK_POLICIES = ("allow", "hold", "block")
APPEAL_STATUSES = ("pending", "upheld", "lifted")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in, aware UTC out: `timestamptz` on PostgreSQL, naive UTC text on SQLite.

    SQLite has no time zones and stores a fixed-width text form, so storing naive UTC
    keeps lexical order equal to time order (keyset pagination relies on it).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(DateTime(timezone=dialect.name != "sqlite"))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: storage takes aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Text, nullable=False),
    Column("username", Text, nullable=False),
    Column("username_key", Text, nullable=False),  # casefolded username
    Column("email", Text, nullable=False),  # lower-cased
    Column("password_hash", Text, nullable=False),
    Column("display_name", Text, nullable=False),
    Column("bio", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # set when the account is deleted: the row stays as a tombstone with no personal data
    # (chat messages and moderation records keep pointing at it); reads skip it
    Column("deleted_at", UTCDateTime, nullable=True),
    PrimaryKeyConstraint("id", name="pk_users", info={"field": "id"}),
    UniqueConstraint("username_key", name="uq_users_username_key", info={"field": "username"}),
    UniqueConstraint("email", name="uq_users_email", info={"field": "email"}),
)

streams = Table(
    "streams",
    metadata,
    Column("id", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("tags", Text, nullable=False),  # JSON array of strings
    Column("quality", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("key_hash", Text, nullable=False),
    Column("key_rotated_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("ended_at", UTCDateTime, nullable=True),
    Column("viewer_count", Integer, nullable=False),
    Column("peak_viewers", Integer, nullable=False),
    # 0004: set with viewer_count by the analytics service
    Column("unique_viewers", Integer, nullable=False, server_default="0"),
    Column("viewers_by_rendition", Text, nullable=False, server_default="{}"),  # JSON object
    PrimaryKeyConstraint("id", name="pk_streams", info={"field": "id"}),
    ForeignKeyConstraint(
        ["user_id"], ["users.id"], name="fk_streams_user_id_users", info={"field": "user_id"}
    ),
    UniqueConstraint("key_hash", name="uq_streams_key_hash", info={"field": "key_hash"}),
    CheckConstraint("status IN ('created', 'live', 'ended')", name="ck_streams_status"),
    Index("ix_streams_user_id_created_at", "user_id", "created_at"),
    Index("ix_streams_status_category_created_at", "status", "category", "created_at"),
)
# 0005: search sorted by viewers or recency walks these in order and probes the index
Index("ix_streams_viewer_count_id", streams.c.viewer_count, streams.c.id)
Index("ix_streams_created_at_id", streams.c.created_at, streams.c.id)

chat_messages = Table(
    "chat_messages",
    metadata,
    Column("id", Text, nullable=False),
    Column("stream_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("client_msg_id", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),  # from chat_rooms.last_seq
    Column("status", Text, nullable=False),
    Column("moderation", Text, nullable=True),  # JSON object
    Column("deleted_by", Text, nullable=True),
    Column("deleted_at", UTCDateTime, nullable=True),
    PrimaryKeyConstraint("id", name="pk_chat_messages", info={"field": "id"}),
    UniqueConstraint(
        "stream_id",
        "user_id",
        "client_msg_id",
        name="uq_chat_messages_client_msg_id",
        info={"field": "client_msg_id"},
    ),
    UniqueConstraint(
        "stream_id", "seq", name="uq_chat_messages_stream_id_seq", info={"field": "seq"}
    ),
    CheckConstraint("status IN ('visible', 'held', 'deleted')", name="ck_chat_messages_status"),
    Index("ix_chat_messages_status_created_at_id", "status", "created_at", "id"),  # review queue
)

# One row per room that has had a message: its last seq. Bumping it takes the row lock,
# so writers to one room queue there and seqs come out in commit order without gaps.
chat_rooms = Table(
    "chat_rooms",
    metadata,
    Column("stream_id", Text, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("stream_id", name="pk_chat_rooms"),
)

followers = Table(
    "followers",
    metadata,
    Column("user_id", Text, nullable=False),  # the one followed
    Column("follower_id", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("user_id", "follower_id", name="pk_followers", info={"field": "follow"}),
    ForeignKeyConstraint(
        ["user_id"], ["users.id"], name="fk_followers_user_id_users", info={"field": "user_id"}
    ),
    ForeignKeyConstraint(
        ["follower_id"],
        ["users.id"],
        name="fk_followers_follower_id_users",
        info={"field": "follower_id"},
    ),
    Index("ix_followers_follower_id", "follower_id"),
)

analytics = Table(
    "analytics",
    metadata,
    Column("stream_id", Text, nullable=False),
    Column("ts", UTCDateTime, nullable=False),
    Column("viewers", Integer, nullable=False),
    Column("chat_messages", Integer, nullable=False),
    Column("ingest_kbps", Integer, nullable=False),
    Index("ix_analytics_stream_id_ts", "stream_id", "ts"),
)

# 0004: a live stream's viewer counts every cdn.viewer_sample_s (services/analytics).
# bytes and watch_s cover the interval_s before `at`; the other counts are as of `at`.
viewer_samples = Table(
    "viewer_samples",
    metadata,
    Column("stream_id", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("interval_s", Float, nullable=False),
    Column("concurrent", Integer, nullable=False),
    Column("unique_viewers", Integer, nullable=False),
    Column("by_rendition", Text, nullable=False),  # JSON object: rendition -> viewers
    Column("bytes", BigInteger, nullable=False),
    Column("watch_s", Float, nullable=False),
    PrimaryKeyConstraint("stream_id", "at", name="pk_viewer_samples"),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", Text, nullable=False),
    Column("secret", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("retires_at", UTCDateTime, nullable=True),
    PrimaryKeyConstraint("kid", name="pk_signing_keys", info={"field": "kid"}),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("family_id", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    PrimaryKeyConstraint("token_hash", name="pk_refresh_tokens", info={"field": "token_hash"}),
    Index("ix_refresh_tokens_family_id", "family_id"),
)


# moderation ----------------------------------------------------------------------------
def _user_fk(column: str, table: str) -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        [column], ["users.id"], name=f"fk_{table}_{column}_users", info={"field": column}
    )


ACTIVE = text("lifted_at IS NULL")
GLOBAL = text("channel_id IS NULL")

channel_roles = Table(
    "channel_roles",
    metadata,
    Column("channel_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("channel_id", "user_id", name="pk_channel_roles", info={"field": "role"}),
    _user_fk("channel_id", "channel_roles"),
    _user_fk("user_id", "channel_roles"),
    CheckConstraint("role IN ('owner', 'moderator')", name="ck_channel_roles_role"),
)

chat_bans = Table(
    "chat_bans",
    metadata,
    Column("id", Text, nullable=False),
    Column("channel_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("banned_by", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("lifted_at", UTCDateTime, nullable=True),
    Column("lifted_by", Text, nullable=True),
    PrimaryKeyConstraint("id", name="pk_chat_bans", info={"field": "id"}),
    _user_fk("channel_id", "chat_bans"),
    _user_fk("user_id", "chat_bans"),
    # at most one active ban per user and channel (a partial index: lifted bans stay)
    Index(
        "uq_chat_bans_active",
        "channel_id",
        "user_id",
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    ),
    Index("ix_chat_bans_channel_id_created_at_id", "channel_id", "created_at", "id"),
)

chat_timeouts = Table(
    "chat_timeouts",
    metadata,
    Column("channel_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("until", UTCDateTime, nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("channel_id", "user_id", name="pk_chat_timeouts"),
    _user_fk("channel_id", "chat_timeouts"),
    _user_fk("user_id", "chat_timeouts"),
)

chat_settings = Table(
    "chat_settings",
    metadata,
    Column("channel_id", Text, nullable=False),
    Column("slow_mode_s", Integer, nullable=False),
    Column("followers_only_min_age_s", Integer, nullable=True),
    Column("link_policy", Text, nullable=False),
    Column("regex_filters", Text, nullable=False),  # JSON array of strings
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", Text, nullable=False),
    PrimaryKeyConstraint("channel_id", name="pk_chat_settings"),
    _user_fk("channel_id", "chat_settings"),
    CheckConstraint(
        "link_policy IN ('allow', 'hold', 'block')", name="ck_chat_settings_link_policy"
    ),
)

banned_words = Table(
    "banned_words",
    metadata,
    Column("channel_id", Text, nullable=True),  # NULL: the global list
    Column("word", Text, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # NULLs are distinct in a unique constraint, hence the partial index for the global list
    UniqueConstraint("channel_id", "word", name="uq_banned_words_channel_id_word"),
    Index(
        "uq_banned_words_global_word",
        "word",
        unique=True,
        sqlite_where=GLOBAL,
        postgresql_where=GLOBAL,
    ),
)

moderation_log = Table(
    "moderation_log",
    metadata,
    Column("id", Text, nullable=False),
    Column("channel_id", Text, nullable=True),  # NULL: platform-wide
    Column("actor_id", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("target_user_id", Text, nullable=True),
    Column("target_message_id", Text, nullable=True),
    Column("reason", Text, nullable=True),
    Column("details", Text, nullable=True),  # JSON object
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("id", name="pk_moderation_log", info={"field": "id"}),
    Index("ix_moderation_log_channel_id_created_at_id", "channel_id", "created_at", "id"),
)

ban_appeals = Table(
    "ban_appeals",
    metadata,
    Column("id", Text, nullable=False),
    Column("ban_id", Text, nullable=False),
    Column("channel_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("status", Text, nullable=False),
    Column("decided_by", Text, nullable=True),
    Column("decided_at", UTCDateTime, nullable=True),
    Column("decision_reason", Text, nullable=True),
    PrimaryKeyConstraint("id", name="pk_ban_appeals", info={"field": "id"}),
    ForeignKeyConstraint(
        ["ban_id"],
        ["chat_bans.id"],
        name="fk_ban_appeals_ban_id_chat_bans",
        info={"field": "ban_id"},
    ),
    UniqueConstraint("ban_id", name="uq_ban_appeals_ban_id", info={"field": "ban_id"}),
    CheckConstraint("status IN ('pending', 'upheld', 'lifted')", name="ck_ban_appeals_status"),
    Index("ix_ban_appeals_channel_id_created_at_id", "channel_id", "created_at", "id"),
)

# Platform admins (the global word list): granted by the operator's CLI, never over the API.
platform_admins = Table(
    "platform_admins",
    metadata,
    Column("user_id", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("user_id", name="pk_platform_admins"),
    _user_fk("user_id", "platform_admins"),
)

# 0006: analytics (issue 14). ingest_health: a live stream's ingest health every
# analytics.health_sample_s (services/media/health.py); analytics_rollups: viewer, chat and
# health figures per 1 min and 1 h bucket (services/analytics/rollup.py), kept longer than
# the fine samples; analytics_rollup_state: how far each resolution has been rolled.
ingest_health = Table(
    "ingest_health",
    metadata,
    Column("stream_id", Text, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("interval_s", Float, nullable=False),
    Column("ingest_kbps", Float, nullable=False),
    Column("frame_rate_fps", Float, nullable=False),
    Column("keyframe_interval_s", Float, nullable=False),
    Column("frames", Integer, nullable=False),
    Column("dropped_frames", Integer, nullable=False),
    Column("transcoder_behind_s", Float, nullable=False),
    Column("transcoder_load", Float, nullable=False),
    Column("shed_rungs", Text, nullable=False),  # JSON array of rung names
    PrimaryKeyConstraint("stream_id", "at", name="pk_ingest_health"),
    Index("ix_ingest_health_at", "at"),
)

analytics_rollups = Table(
    "analytics_rollups",
    metadata,
    Column("stream_id", Text, nullable=False),
    Column("resolution_s", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),  # the bucket's start
    Column("viewer_samples", Integer, nullable=False),
    Column("concurrent_avg", Float, nullable=False),
    Column("concurrent_max", Integer, nullable=False),
    Column("unique_viewers", Integer, nullable=False),
    Column("watch_s", Float, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("by_rendition", Text, nullable=False),  # JSON object: rendition -> peak viewers
    Column("chat_messages", Integer, nullable=False),
    Column("chat_held", Integer, nullable=False),
    Column("chat_removed", Integer, nullable=False),
    Column("health_samples", Integer, nullable=False),
    Column("ingest_kbps", Float, nullable=False),
    Column("frame_rate_fps", Float, nullable=False),
    Column("frame_rate_min_fps", Float, nullable=False),
    Column("keyframe_interval_s", Float, nullable=False),
    Column("frames", Integer, nullable=False),
    Column("dropped_frames", Integer, nullable=False),
    Column("transcoder_behind_max_s", Float, nullable=False),
    Column("transcoder_load_max", Float, nullable=False),
    Column("shed_rungs", Text, nullable=False),  # JSON array: every rung shed in the bucket
    PrimaryKeyConstraint("stream_id", "resolution_s", "at", name="pk_analytics_rollups"),
    Index("ix_analytics_rollups_resolution_s_at", "resolution_s", "at"),
)

analytics_rollup_state = Table(
    "analytics_rollup_state",
    metadata,
    Column("resolution_s", Integer, nullable=False),
    Column("rolled_until", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("resolution_s", name="pk_analytics_rollup_state"),
)

# 0006: rollups and retention read viewer samples by time across streams, and chat
# messages removed in a time range (only deleted ones are in that index: no cost to posts)
Index("ix_viewer_samples_at", viewer_samples.c.at)
DELETED = text("deleted_at IS NOT NULL")
Index("ix_chat_messages_deleted_at", chat_messages.c.deleted_at, sqlite_where=DELETED,
      postgresql_where=DELETED)

# 0007: which streams a signed-in user watched (services/social, POST /api/streams/{id}/watch),
# one row per (user, stream): the "categories you watch" of recommendations.
watch_history = Table(
    "watch_history",
    metadata,
    Column("user_id", Text, nullable=False),
    Column("stream_id", Text, nullable=False),
    Column("first_at", UTCDateTime, nullable=False),
    Column("last_at", UTCDateTime, nullable=False),
    Column("watches", Integer, nullable=False),
    PrimaryKeyConstraint("user_id", "stream_id", name="pk_watch_history"),
    _user_fk("user_id", "watch_history"),
    ForeignKeyConstraint(
        ["stream_id"], ["streams.id"], name="fk_watch_history_stream_id_streams",
        info={"field": "stream_id"},
    ),
    Index("ix_watch_history_user_id_last_at_stream_id", "user_id", "last_at", "stream_id"),
)
