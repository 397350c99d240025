"""Chat messages on SQL: idempotent persist with a per-room sequence, history, review queue.

A room's seq comes from its `chat_rooms` row, bumped in the transaction that inserts the
message: the bump takes the row lock, so on PostgreSQL writers to one room queue there
(on SQLite the write lock already serialises them) and seqs follow commit order without
gaps. A retry (same stream, user and client_msg_id) finds the original row before it
bumps anything; one that loses a race to its own twin rolls the whole transaction back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, select, update

from . import _rows
from ._cursor import keyset, page, seq_keyset, seq_page
from ._records import AuditEntry, ChatMessage, Conflict, Page
from ._runner import SqlRunner
from ._sql_moderation import audited
from ._tables import CHAT_STATUSES, chat_messages, chat_rooms

_NEW_STATUSES = ("visible", "held")  # a message is stored visible, or held for review


class _Duplicate(Exception):
    """Raised inside the transaction to roll back the seq bump: the message exists."""


class ChatMixin(SqlRunner):
    async def add_chat_message(self, message: ChatMessage) -> tuple[ChatMessage, bool]:
        if message.status not in _NEW_STATUSES:
            raise ValueError(f"a new message is visible or held, not {message.status!r}")
        m = chat_messages
        same = select(m).where(
            m.c.stream_id == message.stream_id,
            m.c.user_id == message.user_id,
            m.c.client_msg_id == message.client_msg_id,
        )
        bump = (
            self._insert(chat_rooms)
            .values(stream_id=message.stream_id, last_seq=1)
            .on_conflict_do_update(
                index_elements=["stream_id"], set_={"last_seq": chat_rooms.c.last_seq + 1}
            )
            .returning(chat_rooms.c.last_seq)
        )

        def work(conn: Connection) -> tuple[Row[Any], bool]:
            found = conn.execute(same).one_or_none()
            if found is not None:
                return found, False
            seq = int(conn.execute(bump).scalar_one())
            stmt = (
                self._insert(m)
                .values(_rows.chat_message_values(message, seq))
                .on_conflict_do_nothing()
                .returning(*m.c)
            )
            row = conn.execute(stmt).one_or_none()
            if row is None:  # a twin committed first (or the id is taken)
                raise _Duplicate
            return row, True

        try:
            row, created = await self._write(work)
        except _Duplicate:
            found = await self._read(lambda conn: conn.execute(same).one_or_none())
            if found is None:
                raise Conflict("id") from None
            row, created = found, False
        return _rows.to_chat_message(row), created

    async def get_chat_message(self, message_id: str) -> ChatMessage | None:
        stmt = select(chat_messages).where(chat_messages.c.id == message_id)
        return await self._one(stmt, _rows.to_chat_message)

    async def list_chat_messages(
        self,
        stream_id: str,
        *,
        cursor: str | None = None,
        limit: int = 50,
        include_held: bool = False,
    ) -> Page[ChatMessage]:
        m = chat_messages
        statuses = _NEW_STATUSES if include_held else ("visible",)
        stmt = select(m).where(m.c.stream_id == stream_id, m.c.status.in_(statuses))
        rows = await self._all(seq_keyset(stmt, m.c.seq, cursor, limit))
        return seq_page(rows, limit, _rows.to_chat_message, lambda msg: msg.seq)

    async def set_chat_message_status(
        self,
        message_id: str,
        *,
        status: str,
        expected: tuple[str, ...],
        by: str | None = None,
        at: datetime | None = None,
        audit: AuditEntry | None = None,
    ) -> ChatMessage | None:
        if status not in CHAT_STATUSES:
            raise ValueError(f"unknown chat message status {status!r}")
        deleting = status == "deleted"
        if deleting and (by is None or at is None):
            raise ValueError("deleting a message needs `by` and `at`")
        if not expected:
            return None
        m = chat_messages
        stmt = (
            update(m)
            .where(m.c.id == message_id, m.c.status.in_(expected))
            .values(
                status=status,
                deleted_by=by if deleting else None,
                deleted_at=at if deleting else None,
            )
            .returning(*m.c)
        )

        def work(conn: Connection) -> Row[Any] | None:
            row = conn.execute(stmt).one_or_none()
            if row is not None:
                audited(conn, audit)
            return row

        row = await self._write(work)
        return None if row is None else _rows.to_chat_message(row)

    async def list_held_messages(
        self, stream_id: str | None = None, *, cursor: str | None = None, limit: int = 50
    ) -> Page[ChatMessage]:
        m = chat_messages
        stmt = select(m).where(m.c.status == "held")
        if stream_id is not None:
            stmt = stmt.where(m.c.stream_id == stream_id)
        rows = await self._all(keyset(stmt, m.c.created_at, m.c.id, cursor, limit))
        return page(rows, limit, _rows.to_chat_message, lambda msg: (msg.created_at, msg.id))
