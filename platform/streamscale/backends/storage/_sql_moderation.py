"""Moderation state on SQL: roles, bans, timeouts, room settings, banned words, the audit
log and appeals, per channel.

State transitions are conditional writes whose RETURNING row says who won (lift a ban
only if active, decide an appeal only if pending); a mutation's audit entry is written in
the same transaction, and only by the winner.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, case, delete, insert, select, update

from . import _rows
from ._cursor import keyset, page
from ._records import (
    Appeal,
    AuditEntry,
    Ban,
    BannedWord,
    ChannelRole,
    ChatTimeout,
    Conflict,
    NotFound,
    Page,
    RoomSettings,
)
from ._runner import SqlRunner
from ._tables import (
    CHANNEL_ROLES,
    LINK_POLICIES,
    ban_appeals,
    banned_words,
    channel_roles,
    chat_bans,
    chat_settings,
    chat_timeouts,
    moderation_log,
)

_DECISIONS = ("upheld", "lifted")
_TIMEOUT_KEY = ("channel_id", "user_id")


def audited(conn: Connection, entry: AuditEntry | None) -> None:
    """Append `entry` (if any) inside the caller's transaction."""
    if entry is not None:
        conn.execute(insert(moderation_log).values(_rows.audit_values(entry)))


def _channel_is(column: ColumnElement[Any], channel_id: str | None) -> ColumnElement[bool]:
    return column.is_(None) if channel_id is None else column == channel_id


class ModerationMixin(SqlRunner):
    async def _audited_write(self, stmt: Any, audit: AuditEntry | None) -> Row[Any] | None:
        """Run one RETURNING statement; audit only if it returned a row."""

        def work(conn: Connection) -> Row[Any] | None:
            row = conn.execute(stmt).first()
            if row is not None:
                audited(conn, audit)
            return row

        return await self._write(work)

    # roles ------------------------------------------------------------------------------
    async def set_channel_role(
        self,
        channel_id: str,
        user_id: str,
        role: str | None,
        *,
        at: datetime,
        audit: AuditEntry | None = None,
    ) -> bool:
        r = channel_roles
        stmt: Any
        if role is None:
            stmt = (
                delete(r)
                .where(r.c.channel_id == channel_id, r.c.user_id == user_id)
                .returning(r.c.role)
            )
        elif role not in CHANNEL_ROLES:
            raise ValueError(f"unknown channel role {role!r}")
        else:
            ins = self._insert(r).values(
                channel_id=channel_id, user_id=user_id, role=role, created_at=at
            )
            stmt = ins.on_conflict_do_update(
                index_elements=["channel_id", "user_id"],
                set_={"role": ins.excluded.role, "created_at": ins.excluded.created_at},
                where=r.c.role != ins.excluded.role,
            ).returning(r.c.role)
        return await self._audited_write(stmt, audit) is not None

    async def get_channel_role(self, channel_id: str, user_id: str) -> str | None:
        r = channel_roles
        stmt = select(r.c.role).where(r.c.channel_id == channel_id, r.c.user_id == user_id)
        role = await self._read(lambda conn: conn.execute(stmt).scalar_one_or_none())
        return None if role is None else str(role)

    async def list_channel_roles(self, channel_id: str) -> list[ChannelRole]:
        r = channel_roles
        stmt = (
            select(r)
            .where(r.c.channel_id == channel_id)
            .order_by(case((r.c.role == "owner", 0), else_=1), r.c.created_at, r.c.user_id)
        )
        return [_rows.to_channel_role(row) for row in await self._all(stmt)]

    # bans -------------------------------------------------------------------------------
    async def add_ban(self, ban: Ban, *, audit: AuditEntry | None = None) -> tuple[Ban, bool]:
        b = chat_bans
        values = _rows.record_values(dataclasses.replace(ban, lifted_at=None, lifted_by=None))
        # No conflict target: DO NOTHING covers the partial "one active ban" index too.
        ins = self._insert(b).values(values).on_conflict_do_nothing().returning(*b.c)
        active = select(b).where(
            b.c.channel_id == ban.channel_id, b.c.user_id == ban.user_id, b.c.lifted_at.is_(None)
        )
        id_taken = select(b.c.id).where(b.c.id == ban.id)

        def work(conn: Connection) -> tuple[Row[Any], bool]:
            # PostgreSQL: each statement sees what committed before it, so a ban that
            # blocked the insert is visible to the next select unless lifted since.
            for _ in range(10):
                row = conn.execute(ins).one_or_none()
                if row is not None:
                    audited(conn, audit)
                    return row, True
                existing = conn.execute(active).one_or_none()
                if existing is not None:
                    return existing, False
                if conn.execute(id_taken).first() is not None:
                    raise Conflict("id")
            raise RuntimeError(f"the ban of {ban.user_id} in {ban.channel_id} keeps changing")

        row, created = await self._write(work)
        return _rows.to_ban(row), created

    async def lift_ban(
        self, ban_id: str, *, by: str, at: datetime, audit: AuditEntry | None = None
    ) -> Ban | None:
        b = chat_bans
        stmt = (
            update(b)
            .where(b.c.id == ban_id, b.c.lifted_at.is_(None))
            .values(lifted_at=at, lifted_by=by)
            .returning(*b.c)
        )
        row = await self._audited_write(stmt, audit)
        return None if row is None else _rows.to_ban(row)

    async def get_ban(self, ban_id: str) -> Ban | None:
        return await self._one(select(chat_bans).where(chat_bans.c.id == ban_id), _rows.to_ban)

    async def get_active_ban(self, channel_id: str, user_id: str) -> Ban | None:
        b = chat_bans
        stmt = select(b).where(
            b.c.channel_id == channel_id, b.c.user_id == user_id, b.c.lifted_at.is_(None)
        )
        return await self._one(stmt, _rows.to_ban)

    async def list_bans(
        self,
        channel_id: str,
        *,
        active_only: bool = True,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[Ban]:
        b = chat_bans
        stmt = select(b).where(b.c.channel_id == channel_id)
        if active_only:
            stmt = stmt.where(b.c.lifted_at.is_(None))
        rows = await self._all(keyset(stmt, b.c.created_at, b.c.id, cursor, limit))
        return page(rows, limit, _rows.to_ban, lambda ban: (ban.created_at, ban.id))

    # timeouts ---------------------------------------------------------------------------
    async def set_timeout(
        self, chat_timeout: ChatTimeout, *, audit: AuditEntry | None = None
    ) -> None:
        values = _rows.record_values(chat_timeout)
        ins = self._insert(chat_timeouts).values(values)
        stmt = ins.on_conflict_do_update(
            index_elements=["channel_id", "user_id"],
            set_={name: ins.excluded[name] for name in values if name not in _TIMEOUT_KEY},
        ).returning(chat_timeouts.c.until)
        await self._audited_write(stmt, audit)

    async def clear_timeout(
        self, channel_id: str, user_id: str, *, now: datetime, audit: AuditEntry | None = None
    ) -> bool:
        t = chat_timeouts
        stmt = (
            delete(t)
            .where(t.c.channel_id == channel_id, t.c.user_id == user_id, t.c.until > now)
            .returning(t.c.until)
        )
        return await self._audited_write(stmt, audit) is not None

    async def get_timeout(
        self, channel_id: str, user_id: str, *, now: datetime
    ) -> ChatTimeout | None:
        t = chat_timeouts
        stmt = select(t).where(
            t.c.channel_id == channel_id, t.c.user_id == user_id, t.c.until > now
        )
        return await self._one(stmt, _rows.to_timeout)

    async def list_timeouts(self, channel_id: str, *, now: datetime) -> list[ChatTimeout]:
        t = chat_timeouts
        stmt = (
            select(t)
            .where(t.c.channel_id == channel_id, t.c.until > now)
            .order_by(t.c.until, t.c.user_id)
        )
        return [_rows.to_timeout(row) for row in await self._all(stmt)]

    # room settings and banned words -----------------------------------------------------
    async def get_room_settings(self, channel_id: str) -> RoomSettings:
        stmt = select(chat_settings).where(chat_settings.c.channel_id == channel_id)
        found = await self._one(stmt, _rows.to_room_settings)
        return RoomSettings(channel_id=channel_id) if found is None else found

    async def set_room_settings(
        self, settings: RoomSettings, *, audit: AuditEntry | None = None
    ) -> None:
        if settings.updated_at is None or settings.updated_by is None:
            raise ValueError("room settings need updated_at and updated_by")
        if settings.slow_mode_s < 0 or (settings.followers_only_min_age_s or 0) < 0:
            raise ValueError("slow_mode_s and followers_only_min_age_s must not be negative")
        if settings.link_policy not in LINK_POLICIES:
            raise ValueError(f"unknown link policy {settings.link_policy!r}")
        values = _rows.room_settings_values(settings)
        ins = self._insert(chat_settings).values(values)
        stmt = ins.on_conflict_do_update(
            index_elements=["channel_id"],
            set_={name: ins.excluded[name] for name in values if name != "channel_id"},
        ).returning(chat_settings.c.channel_id)
        await self._audited_write(stmt, audit)

    async def add_banned_word(self, word: BannedWord, *, audit: AuditEntry | None = None) -> bool:
        stmt = (
            self._insert(banned_words)
            .values(_rows.record_values(word))
            .on_conflict_do_nothing()  # either unique index: the channel's or the global one
            .returning(banned_words.c.word)
        )
        return await self._audited_write(stmt, audit) is not None

    async def remove_banned_word(
        self, channel_id: str | None, word: str, *, audit: AuditEntry | None = None
    ) -> bool:
        w = banned_words
        stmt = (
            delete(w)
            .where(_channel_is(w.c.channel_id, channel_id), w.c.word == word)
            .returning(w.c.word)
        )
        return await self._audited_write(stmt, audit) is not None

    async def list_banned_words(self, channel_id: str | None) -> list[BannedWord]:
        w = banned_words
        stmt = select(w).where(w.c.channel_id.is_(None))
        if channel_id is not None:
            stmt = select(w).where((w.c.channel_id == channel_id) | w.c.channel_id.is_(None))
        stmt = stmt.order_by(w.c.word, case((w.c.channel_id.is_(None), 0), else_=1))
        return [_rows.to_banned_word(row) for row in await self._all(stmt)]

    # audit log --------------------------------------------------------------------------
    async def add_audit_entry(self, entry: AuditEntry) -> None:
        await self._write(lambda conn: audited(conn, entry))

    async def list_audit_entries(
        self,
        channel_id: str | None,
        *,
        target_user_id: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[AuditEntry]:
        log = moderation_log
        stmt = select(log).where(_channel_is(log.c.channel_id, channel_id))
        if target_user_id is not None:
            stmt = stmt.where(log.c.target_user_id == target_user_id)
        rows = await self._all(keyset(stmt, log.c.created_at, log.c.id, cursor, limit))
        return page(rows, limit, _rows.to_audit_entry, lambda e: (e.created_at, e.id))

    # appeals ----------------------------------------------------------------------------
    async def add_appeal(self, appeal: Appeal) -> None:
        if appeal.status != "pending":
            raise ValueError("a new appeal is pending")
        b = chat_bans
        of_ban = select(b.c.channel_id, b.c.user_id).where(b.c.id == appeal.ban_id)
        stmt = insert(ban_appeals).values(_rows.record_values(appeal))

        def work(conn: Connection) -> None:
            ban = conn.execute(of_ban).one_or_none()
            if ban is None:
                raise NotFound(f"ban {appeal.ban_id}")
            if (ban.channel_id, ban.user_id) != (appeal.channel_id, appeal.user_id):
                raise ValueError("an appeal's channel and user must be its ban's")
            conn.execute(stmt)

        await self._write(work)

    async def get_appeal(self, appeal_id: str) -> Appeal | None:
        stmt = select(ban_appeals).where(ban_appeals.c.id == appeal_id)
        return await self._one(stmt, _rows.to_appeal)

    async def list_appeals(
        self,
        channel_id: str,
        *,
        status: str | None = "pending",
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[Appeal]:
        a = ban_appeals
        stmt = select(a).where(a.c.channel_id == channel_id)
        if status is not None:
            stmt = stmt.where(a.c.status == status)
        rows = await self._all(keyset(stmt, a.c.created_at, a.c.id, cursor, limit))
        return page(rows, limit, _rows.to_appeal, lambda appeal: (appeal.created_at, appeal.id))

    async def decide_appeal(
        self,
        appeal_id: str,
        *,
        status: str,
        by: str,
        at: datetime,
        reason: str | None = None,
        audit: AuditEntry | None = None,
    ) -> Appeal | None:
        if status not in _DECISIONS:
            raise ValueError(f"an appeal is decided upheld or lifted, not {status!r}")
        a, b = ban_appeals, chat_bans
        decide = (
            update(a)
            .where(a.c.id == appeal_id, a.c.status == "pending")
            .values(status=status, decided_by=by, decided_at=at, decision_reason=reason)
            .returning(*a.c)
        )

        def work(conn: Connection) -> Row[Any] | None:
            row = conn.execute(decide).one_or_none()
            if row is None:
                return None
            if status == "lifted":
                conn.execute(
                    update(b)
                    .where(b.c.id == row.ban_id, b.c.lifted_at.is_(None))
                    .values(lifted_at=at, lifted_by=by)
                )
            audited(conn, audit)
            return row

        row = await self._write(work)
        return None if row is None else _rows.to_appeal(row)
