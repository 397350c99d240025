"""Alembic migrations: head matches `_tables.metadata` on both dialects, runs in a schema."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from streamscale.backends.storage import is_search_index, migrate, open_store
from streamscale.backends.storage._engine import alembic_config, make_engine
from streamscale.backends.storage._tables import metadata

TABLES = {
    "users",
    "streams",
    "chat_messages",
    "followers",
    "analytics",
    "signing_keys",
    "refresh_tokens",
    # 0002: chat and moderation
    "chat_rooms",
    "channel_roles",
    "chat_bans",
    "chat_timeouts",
    "chat_settings",
    "banned_words",
    "moderation_log",
    "ban_appeals",
    # 0003: account deletion (users.deleted_at) and platform admins
    "platform_admins",
    # 0004: viewer counts (streams.unique_viewers, viewers_by_rendition) kept over time
    "viewer_samples",
    # 0006: analytics (ingest health, rollups and how far they got)
    "ingest_health",
    "analytics_rollups",
    "analytics_rollup_state",
    # 0007: social (watch history for recommendations)
    "watch_history",
}


def schema_diff(url: str) -> list[object]:
    engine = make_engine(url, threads=1)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={
                "compare_type": True,
                # 0005's search index: derived, dialect-specific, not in metadata
                "include_name": lambda name, kind, _parents: not (
                    kind == "table" and name is not None and is_search_index(name)),
            })
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = make_engine(url, threads=1)
    try:
        return {n for n in inspect(engine).get_table_names() if not is_search_index(n)}
    finally:
        engine.dispose()


def test_head_matches_metadata(file_url: str) -> None:
    assert schema_diff(file_url), "an empty database must differ, or the check proves nothing"
    migrate(file_url)
    migrate(file_url)  # idempotent
    assert schema_diff(file_url) == []
    assert table_names(file_url) == TABLES | {"alembic_version"}


@pytest.mark.postgres
def test_migrations_run_inside_the_search_path_schema(pg_url: str) -> None:
    migrate(pg_url)
    engine = make_engine(pg_url, threads=1)
    try:
        schema = pg_url.rsplit("%3D", 1)[1]  # the fixture's search_path
        names = set(inspect(engine).get_table_names(schema=schema))
    finally:
        engine.dispose()
    assert names == TABLES | {"alembic_version", "stream_search", "stream_search_terms"}


def test_downgrade_to_base_and_back(file_url: str) -> None:
    migrate(file_url)
    engine = make_engine(file_url, threads=1)
    try:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
        assert table_names(file_url) == {"alembic_version"}
    finally:
        engine.dispose()
    migrate(file_url)
    assert schema_diff(file_url) == []


async def test_open_store_makes_the_folder_and_migrates(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "streamscale.db"
    async with await open_store(f"sqlite:///{path}") as store:
        assert await store.get_user("nobody") is None
    assert await trio.Path(path).exists()
    assert await trio.to_thread.run_sync(schema_diff, f"sqlite:///{path}") == []


async def test_concurrent_opens_migrate_once(file_url: str) -> None:
    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(_open_and_close, file_url)
    assert await trio.to_thread.run_sync(schema_diff, file_url) == []


async def _open_and_close(url: str) -> None:
    store = await open_store(url, threads=1)
    await store.close()


def test_unsupported_url() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        migrate("mysql://localhost/x")
