"""`SqlStore`: the `Store` interface on SQLAlchemy Core, for SQLite and PostgreSQL.

Each method is one short transaction run in a worker thread behind a CapacityLimiter, so
the trio loop never blocks. Races are settled by the database, not by reads before
writes: unique constraints, ON CONFLICT DO NOTHING, and conditional UPDATEs whose row
count (or RETURNING row) says who won.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

from . import _rows
from ._cursor import check_limit, keyset, page
from ._interface import Store
from ._records import (
    AnalyticsSample,
    Conflict,
    Follow,
    NotFound,
    Page,
    RefreshToken,
    SigningKey,
    Stream,
    User,
)
from ._sql_accounts import AccountMixin
from ._sql_analytics import AnalyticsMixin
from ._sql_chat import ChatMixin
from ._sql_moderation import ModerationMixin
from ._sql_search import SearchMixin
from ._sql_social import SocialMixin
from ._sql_viewers import ViewersMixin
from ._tables import (
    STREAM_STATUSES,
    UTCDateTime,
    analytics,
    followers,
    refresh_tokens,
    signing_keys,
    streams,
    users,
)

_LIVE = users.c.deleted_at.is_(None)  # a deleted account is a tombstone no read finds


class SqlStore(ChatMixin, ModerationMixin, AccountMixin, ViewersMixin, SocialMixin,
               AnalyticsMixin, SearchMixin):
    """`Store` over one SQLAlchemy engine; build it with `open_store`.

    Chat messages, moderation, accounts and viewer counts live in their mixins
    (`_sql_chat`, `_sql_moderation`, `_sql_accounts`, `_sql_viewers`).
    """

    # users ------------------------------------------------------------------------------
    async def create_user(self, user: User) -> None:
        """Insert; when both are taken, Conflict("username") wins on every backend."""
        values = _rows.user_values(user)
        taken = select(users.c.id).where(users.c.username_key == values["username_key"])

        def work(conn: Connection) -> None:
            try:
                with conn.begin_nested():
                    conn.execute(insert(users).values(values))
            except IntegrityError as exc:
                mapped = _rows.map_integrity_error(exc)
                # Backends check unique constraints in different orders.
                email_only = isinstance(mapped, Conflict) and mapped.field == "email"
                if email_only and conn.execute(taken).first() is not None:
                    raise Conflict("username") from exc
                raise

        await self._write(work)

    async def get_user(self, user_id: str) -> User | None:
        return await self._one(select(users).where(users.c.id == user_id, _LIVE), _rows.to_user)

    async def get_user_by_username(self, username: str) -> User | None:
        stmt = select(users).where(users.c.username_key == _rows.username_key(username), _LIVE)
        return await self._one(stmt, _rows.to_user)

    async def get_user_by_email(self, email: str) -> User | None:
        stmt = select(users).where(users.c.email == _rows.email_key(email), _LIVE)
        return await self._one(stmt, _rows.to_user)

    async def update_user(
        self,
        user_id: str,
        *,
        email: str | None = None,
        display_name: str | None = None,
        bio: str | None = None,
        password_hash: str | None = None,
        updated_at: datetime,
    ) -> User:
        values: dict[str, Any] = {"updated_at": updated_at}
        if email is not None:
            values["email"] = _rows.email_key(email)
        if display_name is not None:
            values["display_name"] = display_name
        if bio is not None:
            values["bio"] = bio
        if password_hash is not None:
            values["password_hash"] = password_hash
        stmt = (update(users).where(users.c.id == user_id, _LIVE).values(values)
                .returning(*users.c))
        row = await self._write(lambda conn: conn.execute(stmt).one_or_none())
        if row is None:
            raise NotFound(f"user {user_id}")
        return _rows.to_user(row)

    # streams ----------------------------------------------------------------------------
    async def create_stream(self, stream: Stream) -> None:
        """Insert; raises Conflict("id" | "key_hash"), NotFound if the user does not exist."""
        if stream.status not in STREAM_STATUSES:
            raise ValueError(f"unknown stream status {stream.status!r}")
        stmt = insert(streams).values(_rows.stream_values(stream))
        await self._write(lambda conn: conn.execute(stmt))

    async def get_stream(self, stream_id: str) -> Stream | None:
        return await self._one(select(streams).where(streams.c.id == stream_id), _rows.to_stream)

    async def get_stream_by_key_hash(self, key_hash: str) -> Stream | None:
        stmt = select(streams).where(streams.c.key_hash == key_hash)
        return await self._one(stmt, _rows.to_stream)

    async def set_stream_status(
        self, stream_id: str, *, status: str, expected: tuple[str, ...], at: datetime
    ) -> Stream | None:
        if status not in STREAM_STATUSES:
            raise ValueError(f"unknown stream status {status!r}")
        if not expected:
            return None
        values: dict[str, Any] = {"status": status}
        if status == "live":
            values["started_at"] = func.coalesce(
                streams.c.started_at, literal(at, type_=UTCDateTime())
            )
        elif status == "ended":
            values["ended_at"] = at
            values["viewer_count"] = 0  # nobody watches an ended stream (peak and unique stay)
            values["viewers_by_rendition"] = "{}"
        stmt = (
            update(streams)
            .where(streams.c.id == stream_id, streams.c.status.in_(expected))
            .values(values)
            .returning(*streams.c)
        )
        row = await self._write(lambda conn: conn.execute(stmt).one_or_none())
        return None if row is None else _rows.to_stream(row)

    async def set_stream_key(self, stream_id: str, *, key_hash: str, at: datetime) -> Stream:
        stmt = (
            update(streams)
            .where(streams.c.id == stream_id)
            .values(key_hash=key_hash, key_rotated_at=at)
            .returning(*streams.c)
        )
        row = await self._write(lambda conn: conn.execute(stmt).one_or_none())
        if row is None:
            raise NotFound(f"stream {stream_id}")
        return _rows.to_stream(row)

    async def list_streams(
        self,
        *,
        user_id: str | None = None,
        status: str | None = None,
        category: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[Stream]:
        stmt = select(streams)
        if user_id is not None:
            stmt = stmt.where(streams.c.user_id == user_id)
        if status is not None:
            stmt = stmt.where(streams.c.status == status)
        if category is not None:
            stmt = stmt.where(streams.c.category == category)
        stmt = keyset(stmt, streams.c.created_at, streams.c.id, cursor, limit)
        rows = await self._all(stmt)
        return page(rows, limit, _rows.to_stream, lambda s: (s.created_at, s.id))

    # followers --------------------------------------------------------------------------
    async def follow(self, *, user_id: str, follower_id: str, at: datetime) -> bool:
        """Raises NotFound if either user does not exist."""
        stmt = (
            self._insert(followers)
            .values(user_id=user_id, follower_id=follower_id, created_at=at)
            .on_conflict_do_nothing(index_elements=["user_id", "follower_id"])
            .returning(followers.c.user_id)  # rowcount of an INSERT is not portable
        )
        return await self._write(lambda conn: conn.execute(stmt).first() is not None)

    async def unfollow(self, *, user_id: str, follower_id: str) -> bool:
        stmt = delete(followers).where(
            followers.c.user_id == user_id, followers.c.follower_id == follower_id
        )
        return await self._write(lambda conn: conn.execute(stmt).rowcount == 1)

    async def list_followers(
        self, user_id: str, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Follow]:
        stmt = select(followers).where(followers.c.user_id == user_id)
        stmt = keyset(stmt, followers.c.created_at, followers.c.follower_id, cursor, limit)
        rows = await self._all(stmt)
        return page(rows, limit, _rows.to_follow, lambda f: (f.created_at, f.follower_id))

    async def list_following(
        self, follower_id: str, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Follow]:
        stmt = select(followers).where(followers.c.follower_id == follower_id)
        stmt = keyset(stmt, followers.c.created_at, followers.c.user_id, cursor, limit)
        rows = await self._all(stmt)
        return page(rows, limit, _rows.to_follow, lambda f: (f.created_at, f.user_id))

    async def get_follow(self, user_id: str, follower_id: str) -> Follow | None:
        stmt = select(followers).where(
            followers.c.user_id == user_id, followers.c.follower_id == follower_id
        )
        return await self._one(stmt, _rows.to_follow)

    async def count_followers(self, user_id: str) -> int:
        stmt = select(func.count()).select_from(followers).where(followers.c.user_id == user_id)
        return int(await self._read(lambda conn: conn.execute(stmt).scalar_one()))

    async def count_following(self, follower_id: str) -> int:
        stmt = (
            select(func.count())
            .select_from(followers)
            .where(followers.c.follower_id == follower_id)
        )
        return int(await self._read(lambda conn: conn.execute(stmt).scalar_one()))

    # analytics --------------------------------------------------------------------------
    async def add_analytics_sample(self, sample: AnalyticsSample) -> None:
        stmt = insert(analytics).values(_rows.record_values(sample))
        await self._write(lambda conn: conn.execute(stmt))

    async def list_analytics_samples(
        self, stream_id: str, *, since: datetime | None = None, limit: int = 1000
    ) -> list[AnalyticsSample]:
        """Samples at or after `since`, oldest first."""
        check_limit(limit)
        stmt = select(analytics).where(analytics.c.stream_id == stream_id)
        if since is not None:
            stmt = stmt.where(analytics.c.ts >= since)
        stmt = stmt.order_by(analytics.c.ts).limit(limit)
        return [_rows.to_sample(row) for row in await self._all(stmt)]

    # auth -------------------------------------------------------------------------------
    async def add_signing_key(self, key: SigningKey, *, retire_others_at: datetime) -> None:
        """Raises Conflict("kid"); concurrent calls leave exactly one unretired key."""
        values = _rows.record_values(key)
        values["secret"] = self._sealer.seal(key.secret, kid=key.kid)  # sealed at rest

        def work(conn: Connection) -> None:
            if not self._sqlite:  # SQLite already holds the only write lock
                conn.execute(text("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE"))
            conn.execute(
                update(signing_keys)
                .where(signing_keys.c.retires_at.is_(None))
                .values(retires_at=retire_others_at)
            )
            conn.execute(insert(signing_keys).values(values))

        await self._write(work)

    async def list_signing_keys(self, *, now: datetime) -> list[SigningKey]:
        retires = signing_keys.c.retires_at
        stmt = (
            select(signing_keys)
            .where(or_(retires.is_(None), retires > now))
            .order_by(signing_keys.c.created_at.desc(), signing_keys.c.kid.desc())
        )
        sealer = self._sealer  # raises first in a store opened without a secrets key
        keys = [_rows.to_signing_key(row) for row in await self._all(stmt)]
        return [dataclasses.replace(k, secret=sealer.open(k.secret, kid=k.kid)) for k in keys]

    async def add_refresh_token(self, token: RefreshToken) -> None:
        stmt = insert(refresh_tokens).values(_rows.record_values(token))
        await self._write(lambda conn: conn.execute(stmt))

    async def rotate_refresh_token(
        self, token_hash: str, new: RefreshToken, *, now: datetime
    ) -> RefreshToken | None:
        """As in `Store`; `new` takes the old token's user_id and family_id.

        Returns the old token as now stored (used_at set). The conditional UPDATE is the
        arbiter: of two concurrent rotations, the second finds used_at set and so sees a
        reuse, which revokes the family (including the token the first one issued).
        """
        t = refresh_tokens
        claim = (
            update(t)
            .where(
                t.c.token_hash == token_hash,
                t.c.used_at.is_(None),
                t.c.revoked_at.is_(None),
                t.c.expires_at > now,
            )
            .values(used_at=now)
            .returning(*t.c)
        )

        def work(conn: Connection) -> RefreshToken | None:
            row = conn.execute(claim).one_or_none()
            if row is None:
                seen = conn.execute(
                    select(t.c.family_id, t.c.used_at).where(t.c.token_hash == token_hash)
                ).one_or_none()
                if seen is not None and seen.used_at is not None:
                    conn.execute(_revoke_family(seen.family_id, now))
                return None
            old = _rows.to_refresh_token(row)
            issued = dataclasses.replace(new, user_id=old.user_id, family_id=old.family_id)
            conn.execute(insert(t).values(_rows.record_values(issued)))
            return old

        return await self._write(work)

    async def get_refresh_token(self, token_hash: str) -> RefreshToken | None:
        stmt = select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash)
        return await self._one(stmt, _rows.to_refresh_token)

    async def revoke_refresh_family(self, family_id: str, *, now: datetime) -> None:
        stmt = _revoke_family(family_id, now)
        await self._write(lambda conn: conn.execute(stmt))


def _revoke_family(family_id: str, now: datetime) -> Any:
    t = refresh_tokens
    return (
        update(t).where(t.c.family_id == family_id, t.c.revoked_at.is_(None)).values(revoked_at=now)
    )


def _conforms(store: SqlStore) -> Store:
    """Never called: makes mypy check SqlStore against the Store protocol."""
    return store
