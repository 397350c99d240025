"""Rows to records and back, and IntegrityError to the interface's errors.

Kept apart from `_sql.py` so the store reads as queries only.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from sqlalchemy import ForeignKeyConstraint, PrimaryKeyConstraint, Row, UniqueConstraint
from sqlalchemy.exc import IntegrityError

from ._interface import (
    AnalyticsSample,
    ChatMessage,
    Conflict,
    Follow,
    NotFound,
    RefreshToken,
    SigningKey,
    StorageError,
    Stream,
    User,
)
from ._tables import metadata


def username_key(username: str) -> str:
    """The case-insensitive identity of a username: NFKC, then casefold (so "ß" == "SS")."""
    return unicodedata.normalize("NFKC", username).casefold()


def email_key(email: str) -> str:
    return email.lower()


def user_values(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "username_key": username_key(user.username),
        "email": email_key(user.email),
        "password_hash": user.password_hash,
        "display_name": user.display_name,
        "bio": user.bio,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
    }


def to_user(row: Row[Any]) -> User:
    m = row._mapping
    return User(
        id=m["id"],
        username=m["username"],
        email=m["email"],
        password_hash=m["password_hash"],
        display_name=m["display_name"],
        bio=m["bio"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def stream_values(stream: Stream) -> dict[str, Any]:
    values = {f: getattr(stream, f) for f in Stream.__dataclass_fields__}
    values["tags"] = json.dumps(list(stream.tags), ensure_ascii=False)
    return values


def to_stream(row: Row[Any]) -> Stream:
    values = {f: row._mapping[f] for f in Stream.__dataclass_fields__}
    values["tags"] = tuple(json.loads(values["tags"]))
    return Stream(**values)


def to_follow(row: Row[Any]) -> Follow:
    m = row._mapping
    return Follow(user_id=m["user_id"], follower_id=m["follower_id"], created_at=m["created_at"])


def to_chat_message(row: Row[Any]) -> ChatMessage:
    return ChatMessage(**{f: row._mapping[f] for f in ChatMessage.__dataclass_fields__})


def to_sample(row: Row[Any]) -> AnalyticsSample:
    return AnalyticsSample(**{f: row._mapping[f] for f in AnalyticsSample.__dataclass_fields__})


def to_signing_key(row: Row[Any]) -> SigningKey:
    values = {f: row._mapping[f] for f in SigningKey.__dataclass_fields__}
    values["secret"] = bytes(values["secret"])  # psycopg may hand back a memoryview
    return SigningKey(**values)


def to_refresh_token(row: Row[Any]) -> RefreshToken:
    return RefreshToken(**{f: row._mapping[f] for f in RefreshToken.__dataclass_fields__})


def record_values(record: Any) -> dict[str, Any]:
    """Column values of a record whose fields are exactly its table's columns."""
    return {f: getattr(record, f) for f in record.__dataclass_fields__}


def _constraint_fields() -> tuple[dict[str, str], dict[str, str]]:
    """Field names by constraint name (PostgreSQL) and by "table.col, ..." (SQLite)."""
    by_name: dict[str, str] = {}
    by_columns: dict[str, str] = {}
    for table in metadata.tables.values():
        for constraint in table.constraints:
            field = constraint.info.get("field")
            if field is None:
                continue
            by_name[str(constraint.name)] = field
            if isinstance(constraint, UniqueConstraint | PrimaryKeyConstraint):
                key = ", ".join(f"{table.name}.{column.name}" for column in constraint.columns)
                by_columns[key] = field
            elif not isinstance(constraint, ForeignKeyConstraint):
                raise TypeError(f"unexpected field info on {constraint.name}")
    return by_name, by_columns


_BY_NAME, _BY_COLUMNS = _constraint_fields()
_SQLITE_UNIQUE = "UNIQUE constraint failed: "


def map_integrity_error(exc: IntegrityError) -> StorageError | None:
    """Conflict(field) for a unique violation, NotFound for a missing referenced row.

    None for anything else (NOT NULL, CHECK): those are bugs in the caller, not
    conditions to handle, so the original error should propagate.
    """
    orig = exc.orig
    diag = getattr(orig, "diag", None)
    if diag is not None:  # psycopg
        sqlstate = getattr(orig, "sqlstate", None)
        name = diag.constraint_name or ""
        if sqlstate == "23505" and name in _BY_NAME:
            return Conflict(_BY_NAME[name])
        if sqlstate == "23503":
            return NotFound(f"{_BY_NAME.get(name, name)} refers to a row that does not exist")
        return None
    message = str(orig)
    if message.startswith(_SQLITE_UNIQUE):
        field = _BY_COLUMNS.get(message.removeprefix(_SQLITE_UNIQUE))
        return Conflict(field) if field is not None else None
    if message.startswith("FOREIGN KEY constraint failed"):
        return NotFound("a referenced row does not exist")
    return None
