"""The schema in SQLAlchemy Core: the single source the migrations are checked against.

Constraints are named explicitly (and carry `info={"field": ...}`) so an IntegrityError
maps to `Conflict(field)` on both dialects: PostgreSQL reports the constraint name,
SQLite the constrained columns.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

STREAM_STATUSES = ("created", "live", "ended")


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
    PrimaryKeyConstraint("id", name="pk_streams", info={"field": "id"}),
    ForeignKeyConstraint(
        ["user_id"], ["users.id"], name="fk_streams_user_id_users", info={"field": "user_id"}
    ),
    UniqueConstraint("key_hash", name="uq_streams_key_hash", info={"field": "key_hash"}),
    CheckConstraint("status IN ('created', 'live', 'ended')", name="ck_streams_status"),
    Index("ix_streams_user_id_created_at", "user_id", "created_at"),
    Index("ix_streams_status_category_created_at", "status", "category", "created_at"),
)

chat_messages = Table(
    "chat_messages",
    metadata,
    Column("id", Text, nullable=False),
    Column("stream_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("id", name="pk_chat_messages", info={"field": "id"}),
    Index("ix_chat_messages_stream_id_created_at_id", "stream_id", "created_at", "id"),
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
