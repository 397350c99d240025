"""Rows to records and back, and IntegrityError to the interface's errors.

Kept apart from `_sql.py` so the store reads as queries only.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from typing import Any

from sqlalchemy import ForeignKeyConstraint, PrimaryKeyConstraint, Row, UniqueConstraint
from sqlalchemy.exc import IntegrityError

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
    NotFound,
    RefreshToken,
    RoomSettings,
    SigningKey,
    StorageError,
    Stream,
    User,
    ViewerSample,
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
    values["viewers_by_rendition"] = rendition_json(stream.viewers_by_rendition)
    return values


def to_stream(row: Row[Any]) -> Stream:
    values = {f: row._mapping[f] for f in Stream.__dataclass_fields__}
    values["tags"] = tuple(json.loads(values["tags"]))
    values["viewers_by_rendition"] = json.loads(values["viewers_by_rendition"])
    return Stream(**values)


def rendition_json(counts: Mapping[str, int]) -> str:
    """rendition -> viewers as stored: a JSON object with sorted keys."""
    return json.dumps(dict(counts), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def viewer_sample_values(sample: ViewerSample) -> dict[str, Any]:
    values = record_values(sample)
    values["by_rendition"] = rendition_json(sample.by_rendition)
    return values


def to_viewer_sample(row: Row[Any]) -> ViewerSample:
    values = _fields(ViewerSample, row)
    values["by_rendition"] = json.loads(values["by_rendition"])
    return ViewerSample(**values)


def to_follow(row: Row[Any]) -> Follow:
    m = row._mapping
    return Follow(user_id=m["user_id"], follower_id=m["follower_id"], created_at=m["created_at"])


def to_chat_message(row: Row[Any]) -> ChatMessage:
    values = _fields(ChatMessage, row)
    values["moderation"] = _from_json(values["moderation"])
    return ChatMessage(**values)


def chat_message_values(message: ChatMessage, seq: int) -> dict[str, Any]:
    values = record_values(message)
    values["moderation"] = _to_json(message.moderation)
    values["seq"] = seq
    return values


def to_channel_role(row: Row[Any]) -> ChannelRole:
    return ChannelRole(**_fields(ChannelRole, row))


def to_ban(row: Row[Any]) -> Ban:
    return Ban(**_fields(Ban, row))


def to_timeout(row: Row[Any]) -> ChatTimeout:
    return ChatTimeout(**_fields(ChatTimeout, row))


def to_room_settings(row: Row[Any]) -> RoomSettings:
    values = _fields(RoomSettings, row)
    values["regex_filters"] = tuple(json.loads(values["regex_filters"]))
    return RoomSettings(**values)


def room_settings_values(settings: RoomSettings) -> dict[str, Any]:
    values = record_values(settings)
    values["regex_filters"] = json.dumps(list(settings.regex_filters), ensure_ascii=False)
    return values


def to_banned_word(row: Row[Any]) -> BannedWord:
    return BannedWord(**_fields(BannedWord, row))


def to_audit_entry(row: Row[Any]) -> AuditEntry:
    values = _fields(AuditEntry, row)
    values["details"] = _from_json(values["details"])
    return AuditEntry(**values)


def audit_values(entry: AuditEntry) -> dict[str, Any]:
    values = record_values(entry)
    values["details"] = _to_json(entry.details)
    return values


def to_appeal(row: Row[Any]) -> Appeal:
    return Appeal(**_fields(Appeal, row))


def _fields(cls: Any, row: Row[Any]) -> dict[str, Any]:
    return {f: row._mapping[f] for f in cls.__dataclass_fields__}


def _to_json(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(dict(value), ensure_ascii=False)


def _from_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


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
