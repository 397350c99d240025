"""Storage: one interface (`Store`), SQLite and PostgreSQL implementations.

`await open_store(url)` returns a migrated `SqlStore`; `migrate(url)` upgrades a database
to the newest schema without opening a store (blocking).
"""

import trio
from sqlalchemy import Engine

from ._engine import make_engine, migrate, upgrade
from ._interface import Store
from ._interface_chat import ChatStore, ModerationStore
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
)
from ._sql import SqlStore

__all__ = [
    "AnalyticsSample",
    "Appeal",
    "AuditEntry",
    "Ban",
    "BannedWord",
    "ChannelRole",
    "ChatMessage",
    "ChatStore",
    "ChatTimeout",
    "Conflict",
    "Follow",
    "InvalidCursor",
    "ModerationStore",
    "NotFound",
    "Page",
    "RefreshToken",
    "RoomSettings",
    "SigningKey",
    "SqlStore",
    "StorageError",
    "Store",
    "Stream",
    "User",
    "migrate",
    "open_store",
]


async def open_store(url: str, *, threads: int = 8, echo: bool = False) -> SqlStore:
    """Open (creating the SQLite file and its folder if needed) and migrate to head.

    `url` is `sqlite:///path/to.db`, `sqlite://` (in memory, every call serialised: for
    tests) or `postgresql+psycopg://user@host/db` (libpq options such as
    `?options=-csearch_path%3Dmyschema` pass through).
    """
    if threads < 1:
        raise ValueError("threads must be at least 1")

    def setup() -> Engine:
        engine = make_engine(url, threads=threads, echo=echo)
        try:
            upgrade(engine)
        except BaseException:
            engine.dispose()
            raise
        return engine

    return SqlStore(await trio.to_thread.run_sync(setup), threads=threads)
