"""Account deletion and platform admins on SQL (`AccountStore`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Text, delete, literal, select, update

from ._records import AuditEntry, NotFound
from ._runner import SqlRunner
from ._sql_moderation import audited
from ._tables import (
    channel_roles,
    followers,
    platform_admins,
    refresh_tokens,
    streams,
    users,
    watch_history,
)

TOMBSTONE = "deleted:"
"""Prefix of a deleted account's username and email, and of its streams' key hashes: no
valid username, email or sha256 hex digest contains a colon, so none can collide."""


class AccountMixin(SqlRunner):
    async def delete_user(self, user_id: str, *, at: datetime) -> bool:
        gone = f"{TOMBSTONE}{user_id}"

        def work(conn: Connection) -> bool:
            done = conn.execute(
                update(users)
                .where(users.c.id == user_id, users.c.deleted_at.is_(None))
                .values(username=gone, username_key=gone, email=gone, password_hash="",
                        display_name="", bio="", updated_at=at, deleted_at=at)
                .returning(users.c.id)
            ).first()
            if done is None:
                return False
            f = followers
            conn.execute(delete(f).where((f.c.user_id == user_id) | (f.c.follower_id == user_id)))
            conn.execute(delete(refresh_tokens).where(refresh_tokens.c.user_id == user_id))
            conn.execute(delete(watch_history).where(watch_history.c.user_id == user_id))
            conn.execute(delete(channel_roles).where(channel_roles.c.user_id == user_id))
            conn.execute(delete(platform_admins).where(platform_admins.c.user_id == user_id))
            conn.execute(
                update(streams)
                .where(streams.c.user_id == user_id)
                .values(key_hash=literal(TOMBSTONE, Text) + streams.c.id, key_rotated_at=at)
            )
            return True

        return await self._write(work)

    async def set_platform_admin(
        self, user_id: str, admin: bool, *, at: datetime, audit: AuditEntry | None = None
    ) -> bool:
        p = platform_admins

        def work(conn: Connection) -> bool:
            stmt: Any
            if admin:
                live = select(users.c.id).where(users.c.id == user_id,
                                                users.c.deleted_at.is_(None))
                if conn.execute(live).first() is None:
                    raise NotFound(f"user {user_id}")
                stmt = (self._insert(p).values(user_id=user_id, created_at=at)
                        .on_conflict_do_nothing().returning(p.c.user_id))
            else:
                stmt = delete(p).where(p.c.user_id == user_id).returning(p.c.user_id)
            if conn.execute(stmt).first() is None:
                return False
            audited(conn, audit)
            return True

        return await self._write(work)

    async def is_platform_admin(self, user_id: str) -> bool:
        stmt = select(platform_admins.c.user_id).where(platform_admins.c.user_id == user_id)
        return await self._read(lambda conn: conn.execute(stmt).first() is not None)

    async def list_platform_admins(self) -> list[str]:
        p = platform_admins
        stmt = select(p.c.user_id).order_by(p.c.created_at, p.c.user_id)
        return [str(row.user_id) for row in await self._all(stmt)]
