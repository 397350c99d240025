"""Engines for both dialects, and the Alembic upgrade that every store runs on open.

SQLite is configured for many threads: WAL (readers never block the writer), a busy
timeout, foreign keys on, and SQLAlchemy (not the sqlite3 module) emitting BEGIN, so a
write transaction can start with BEGIN IMMEDIATE and never hit a lock upgrade deadlock.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from ..extras import require

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 5000
# Execution options naming what a connection is for; plain connections get a plain BEGIN.
WRITE_OPTION = "streamscale_write"  # SQLite: BEGIN IMMEDIATE (take the write lock first)
SINGLE_READ_OPTION = "streamscale_single_read"  # one SELECT: no transaction needed


def is_sqlite_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def make_engine(url: str | URL, *, threads: int = 8, echo: bool = False) -> Engine:
    """An engine whose pool matches the thread limiter, with per-dialect session setup."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed, threads=threads, echo=echo)
    if backend == "postgresql":
        require("psycopg", extra="postgres", what="a postgresql storage url")
        # No pre-ping (a round trip per checkout): a dropped server invalidates the whole
        # pool on the first disconnect error, so one call fails and the next reconnects.
        return create_engine(parsed, echo=echo, pool_size=threads, max_overflow=threads)
    raise ValueError(f"unsupported storage url {parsed!r}: use sqlite:/// or postgresql+psycopg://")


def _sqlite_engine(url: URL, *, threads: int, echo: bool) -> Engine:
    memory = is_sqlite_memory(url)
    if memory:
        # One shared connection: the store serialises every call for this mode.
        engine = create_engine(
            url, echo=echo, poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        assert url.database is not None
        _create_owner_only(Path(url.database))
        engine = create_engine(
            url,
            echo=echo,
            pool_size=threads,
            max_overflow=threads,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see below)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            if not memory:
                _enable_wal(cursor)
                cursor.execute("PRAGMA synchronous=NORMAL")  # durable enough under WAL
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get(WRITE_OPTION, False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif not options.get(SINGLE_READ_OPTION, False):
            conn.exec_driver_sql("BEGIN")

    return engine


def _create_owner_only(path: Path) -> None:
    """Create the database file (and its folder) readable by its owner alone.

    SQLite gives the -wal and -shm files the database file's mode, so a 0600 database
    keeps all three private whatever the umask. An existing file that others can read
    is narrowed to 0600, with a log line.
    """
    folder = path.parent
    if not folder.exists():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = name.stat().st_mode & 0o777
        except FileNotFoundError:
            continue
        if mode & 0o077:
            name.chmod(0o600)
            logger.warning("%s was mode %04o (others could read it): now 0600", name, mode)


def _enable_wal(cursor: Any) -> None:
    """WAL persists in the file, so only a new file's first connections have to switch.

    Switching needs the file to itself and SQLite answers "locked" at once, without the
    busy handler, when several connections open a new file together: retry briefly.
    """
    for attempt in range(50):
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            time.sleep(0.01 * (attempt + 1))  # in a worker thread, never on the loop


def alembic_config() -> Config:
    """Alembic configured from code: the scripts ship inside the package, no .ini file."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(engine: Engine) -> None:
    """Upgrade `engine`'s database to head in one transaction, one migrator at a time.

    PostgreSQL: a transaction-scoped advisory lock per schema serialises processes that
    start together. SQLite: BEGIN IMMEDIATE takes the write lock for the whole upgrade.
    """
    with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtext('streamscale:' || current_schema()))")
            )
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    logger.debug("storage schema at head for %s", engine.url.render_as_string())


def migrate(url: str) -> None:
    """Upgrade the database at `url` to the newest schema (blocking; run it in a thread)."""
    engine = make_engine(url, threads=1)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
