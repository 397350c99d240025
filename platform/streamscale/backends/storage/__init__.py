"""Storage: one interface (`Store`), SQLite and PostgreSQL implementations.

`await open_store(url)` returns a migrated `SqlStore`; `migrate(url)` upgrades a database
to the newest schema without opening a store (blocking).
"""

import trio
from sqlalchemy import Engine

from ._engine import make_engine, migrate, upgrade
from ._interface import Store
from ._interface_analytics import AnalyticsStore, ChatActivity, HealthSample, Rollup
from ._interface_chat import ChatStore, ModerationStore
from ._interface_search import CategoryStats, SearchPage, SearchStore, query_words
from ._interface_social import FollowedCategory, SocialStore, StreamCard, Watch, WatchedCategory
from ._records import (
    AnalyticsSample,
    Appeal,
    AuditEntry,
    Ban,
    BannedWord,
    ChannelRole,
    ChatMessage,
    ChatTimeout,
    Conflict,
    Follow,
    InvalidCursor,
    NotFound,
    Page,
    RefreshToken,
    RoomSettings,
    SigningKey,
    StorageError,
    Stream,
    User,
    ViewerSample,
)
from ._sealing import Sealer, SecretsKeyError, new_key_text, parse_key, seal_plain_rows
from ._sql import SqlStore
from ._sql_search import is_search_index

__all__ = [
    "AnalyticsSample",
    "AnalyticsStore",
    "Appeal",
    "AuditEntry",
    "Ban",
    "BannedWord",
    "CategoryStats",
    "ChannelRole",
    "ChatActivity",
    "ChatMessage",
    "ChatStore",
    "ChatTimeout",
    "Conflict",
    "Follow",
    "FollowedCategory",
    "HealthSample",
    "InvalidCursor",
    "ModerationStore",
    "NotFound",
    "Page",
    "RefreshToken",
    "Rollup",
    "RoomSettings",
    "SearchPage",
    "SearchStore",
    "SecretsKeyError",
    "SigningKey",
    "SocialStore",
    "SqlStore",
    "StorageError",
    "Store",
    "Stream",
    "StreamCard",
    "User",
    "ViewerSample",
    "Watch",
    "WatchedCategory",
    "is_search_index",
    "migrate",
    "new_key_text",
    "open_store",
    "parse_key",
    "query_words",
]


async def open_store(
    url: str, *, threads: int = 8, echo: bool = False, secrets_key: bytes | None = None
) -> SqlStore:
    """Open (creating the SQLite file and its folder if needed, owner-only) and migrate.

    `url` is `sqlite:///path/to.db`, `sqlite://` (in memory, every call serialised: for
    tests) or `postgresql+psycopg://user@host/db` (libpq options such as
    `?options=-csearch_path%3Dmyschema` pass through).

    `secrets_key` (32 bytes) seals signing keys at rest (`_sealing`): on open, plain rows
    are sealed and every sealed row must open with it, or SecretsKeyError says so. A
    store opened without one cannot read or write signing keys.
    """
    if threads < 1:
        raise ValueError("threads must be at least 1")
    sealer = Sealer(secrets_key) if secrets_key is not None else None

    def setup() -> Engine:
        engine = make_engine(url, threads=threads, echo=echo)
        try:
            upgrade(engine)
            if sealer is not None:
                seal_plain_rows(engine, sealer)
        except BaseException:
            engine.dispose()
            raise
        return engine

    return SqlStore(await trio.to_thread.run_sync(setup), threads=threads, sealer=sealer)
