"""Keyset pages with opaque cursors: the (created_at, id) of the last row a page returned,
or for a chat room's history the last row's seq.

Keyset rather than OFFSET so a page costs the same at any depth and rows inserted while
a client pages do not shift or repeat the ones it has not seen yet.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, or_

from ._records import InvalidCursor, Page

T = TypeVar("T")


def encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = f"{created_at.astimezone(UTC).isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) inside `cursor`; ValueError("invalid cursor") for anything else."""
    try:
        if not cursor or len(cursor) > 1024:
            raise ValueError("bad length")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_text, sep, row_id = raw.decode("utf-8").partition("|")
        created_at = datetime.fromisoformat(created_text)
    except (ValueError, binascii.Error, UnicodeError, OverflowError):
        raise InvalidCursor() from None
    if not sep or not row_id or "\x00" in row_id or created_at.utcoffset() is None:
        raise InvalidCursor()
    try:
        return created_at.astimezone(UTC), row_id
    except OverflowError:  # e.g. 0001-01-01T00:00-01:00 has no UTC equivalent
        raise InvalidCursor() from None


def encode_seq_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode("ascii").rstrip("=")


MAX_SEQ = 2**63 - 1  # BIGINT


def decode_seq_cursor(cursor: str) -> int:
    """The seq inside `cursor`; ValueError("invalid cursor") for anything else."""
    try:
        if not cursor or len(cursor) > 64:
            raise ValueError("bad length")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, binascii.Error, UnicodeError):
        raise InvalidCursor() from None
    digits = raw.removeprefix("seq:")
    if digits == raw or not digits.isdigit() or len(digits) > 19 or digits.startswith("0"):
        raise InvalidCursor()
    seq = int(digits)
    if seq > MAX_SEQ:
        raise InvalidCursor()
    return seq


def check_limit(limit: int) -> None:
    if limit < 1:
        raise ValueError("limit must be at least 1")


def keyset(
    stmt: Select[Any],
    created: ColumnElement[Any],
    row_id: ColumnElement[Any],
    cursor: str | None,
    limit: int,
) -> Select[Any]:
    """Newest first on (created_at, id), after the cursor's row, one extra row to peek."""
    check_limit(limit)
    if cursor is not None:
        at, last_id = decode_cursor(cursor)
        stmt = stmt.where(or_(created < at, and_(created == at, row_id < last_id)))
    return stmt.order_by(created.desc(), row_id.desc()).limit(limit + 1)


def page(
    rows: Sequence[Any],
    limit: int,
    convert: Callable[[Any], T],
    key: Callable[[T], tuple[datetime, str]],
) -> Page[T]:
    items = [convert(row) for row in rows[:limit]]
    cursor = encode_cursor(*key(items[-1])) if len(rows) > limit else None
    return Page(items=items, next_cursor=cursor)


def seq_keyset(
    stmt: Select[Any], seq: ColumnElement[Any], cursor: str | None, limit: int
) -> Select[Any]:
    """Newest first on seq (already scoped to one room), after the cursor's row."""
    check_limit(limit)
    if cursor is not None:
        stmt = stmt.where(seq < decode_seq_cursor(cursor))
    return stmt.order_by(seq.desc()).limit(limit + 1)


def seq_page(
    rows: Sequence[Any], limit: int, convert: Callable[[Any], T], key: Callable[[T], int]
) -> Page[T]:
    items = [convert(row) for row in rows[:limit]]
    cursor = encode_seq_cursor(key(items[-1])) if len(rows) > limit else None
    return Page(items=items, next_cursor=cursor)
