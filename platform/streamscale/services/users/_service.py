"""Users: registration, login, refresh tokens, profiles and follows."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import trio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ...backends.storage import (
    Conflict,
    Follow,
    NotFound,
    Page,
    RefreshToken,
    Store,
    Stream,
    User,
)
from ...config import AuthConfig
from ..auth import KeyRing
from ..clock import new_id, utcnow
from ..errors import ApiError, ConflictError, NotFoundError, Unauthorized, ValidationFailed

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Tokens:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    user: User


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UserService:
    def __init__(self, store: Store, keys: KeyRing, auth: AuthConfig) -> None:
        self._store = store
        self._keys = keys
        self._auth = auth
        self._hasher = PasswordHasher(  # argon2id
            time_cost=auth.password_time_cost, memory_cost=auth.password_memory_kib,
            parallelism=auth.password_parallelism,
        )
        # argon2 is CPU and memory heavy: bound how many hash at once, off the loop.
        self._hash_limiter = trio.CapacityLimiter(2)
        self._dummy_hash: str | None = None  # made on first use, off the event loop

    async def _hash(self, password: str) -> str:
        return await trio.to_thread.run_sync(
            self._hasher.hash, password, limiter=self._hash_limiter
        )

    async def _verify(self, password_hash: str, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                return False

        return await trio.to_thread.run_sync(check, limiter=self._hash_limiter)

    async def register(
        self, *, username: str, email: str, password: str, display_name: str | None
    ) -> User:
        if password.lower() in {username.lower(), email.lower()}:
            raise ValidationFailed("password must differ from the username and email")
        if await self._store.get_user_by_username(username) is not None:
            raise ConflictError("that username is taken", code="username_taken")
        if await self._store.get_user_by_email(email) is not None:
            raise ConflictError("that email is already registered", code="email_taken")
        now = utcnow()
        user = User(
            id=new_id(), username=username, email=email,
            password_hash=await self._hash(password),
            display_name=display_name or username, bio="", created_at=now, updated_at=now,
        )
        try:
            await self._store.create_user(user)
        except Conflict as exc:  # lost a race with a concurrent registration
            if exc.field == "email":
                raise ConflictError("that email is already registered",
                                    code="email_taken") from None
            raise ConflictError("that username is taken", code="username_taken") from None
        log.info("user registered: %s (%s)", user.username, user.id)
        return user

    async def login(self, *, login: str, password: str) -> Tokens:
        if "@" in login:
            user = await self._store.get_user_by_email(login.strip().lower())
        else:
            user = await self._store.get_user_by_username(login.strip())
        # Verify against a dummy hash for unknown users so timing does not tell.
        if user is None and self._dummy_hash is None:
            self._dummy_hash = await self._hash(secrets.token_hex(16))
        ok = await self._verify(user.password_hash if user else self._dummy_hash or "", password)
        if user is None or not ok:
            raise Unauthorized("wrong username/email or password", code="invalid_credentials")
        return await self._issue(user, family_id=new_id())

    async def _issue(self, user: User, *, family_id: str) -> Tokens:
        refresh = secrets.token_urlsafe(32)
        now = utcnow()
        await self._store.add_refresh_token(RefreshToken(
            token_hash=_token_hash(refresh), user_id=user.id, family_id=family_id,
            created_at=now, expires_at=now + timedelta(seconds=self._auth.refresh_ttl_s),
            used_at=None, revoked_at=None,
        ))
        return self._tokens(user, refresh)

    def _tokens(self, user: User, refresh: str) -> Tokens:
        access, ttl_s = self._keys.sign(user_id=user.id, username=user.username)
        return Tokens(access_token=access, expires_in=ttl_s, refresh_token=refresh,
                      refresh_expires_in=self._auth.refresh_ttl_s, user=user)

    async def refresh(self, refresh_token: str) -> Tokens:
        """Rotate a refresh token; a reused one revokes every token of its login."""
        new = secrets.token_urlsafe(32)
        now = utcnow()
        placeholder = RefreshToken(
            token_hash=_token_hash(new), user_id="", family_id="", created_at=now,
            expires_at=now + timedelta(seconds=self._auth.refresh_ttl_s),
            used_at=None, revoked_at=None,
        )
        old = await self._store.rotate_refresh_token(
            _token_hash(refresh_token), placeholder, now=now
        )
        if old is None:
            raise Unauthorized("refresh token is invalid, expired or already used; sign in",
                               code="invalid_refresh_token")
        user = await self._store.get_user(old.user_id)
        if user is None:
            raise Unauthorized("account no longer exists", code="invalid_refresh_token")
        return self._tokens(user, new)

    async def logout(self, refresh_token: str) -> None:
        """Revoke the refresh token's whole family (that login, wherever it was copied)."""
        token = await self._store.get_refresh_token(_token_hash(refresh_token))
        if token is not None:
            await self._store.revoke_refresh_family(token.family_id, now=utcnow())

    async def get(self, user_id: str) -> User:
        user = await self._store.get_user(user_id)
        if user is None:
            raise NotFoundError("no such user", code="user_not_found")
        return user

    async def counts(self, user_id: str) -> tuple[int, int]:
        return (await self._store.count_followers(user_id),
                await self._store.count_following(user_id))

    async def update_profile(
        self, user_id: str, *, display_name: str | None, bio: str | None, email: str | None,
        password: str | None, current_password: str | None,
    ) -> User:
        user = await self.get(user_id)
        password_hash = None
        if password is not None or email is not None:
            if current_password is None:
                raise ValidationFailed("changing email or password needs current_password")
            if not await self._verify(user.password_hash, current_password):
                raise ApiError("current_password is wrong", status=403,
                               code="invalid_credentials")
        if password is not None:
            password_hash = await self._hash(password)
        try:
            return await self._store.update_user(
                user_id, display_name=display_name, bio=bio, email=email,
                password_hash=password_hash, updated_at=utcnow(),
            )
        except Conflict:
            raise ConflictError("that email is already registered", code="email_taken") from None
        except NotFound:
            raise NotFoundError("no such user", code="user_not_found") from None

    async def delete_account(
        self, user_id: str, *, password: str,
        end_stream: Callable[[str], Awaitable[Stream | None]],
    ) -> list[str]:
        """Delete an account once its password is confirmed; the ids of the streams ended.

        Open streams end first, by `end_stream` (`StreamService.mark_ended`; the ingest
        re-checks keys every `media.key_check_s` and cuts a live publisher off), then one
        store transaction erases the personal data, refresh tokens and stream keys
        (`Store.delete_user`); access tokens die with the account, as `authenticate` finds
        no user. Chat messages stay, shown as deleted.
        """
        user = await self.get(user_id)
        if not await self._verify(user.password_hash, password):
            raise ApiError("password is wrong", status=403, code="invalid_credentials")
        ended = []
        for status in ("live", "created"):
            while True:  # mark_ended drops the stream from this listing: re-read page one
                page = await self._store.list_streams(user_id=user_id, status=status,
                                                      limit=50)
                if not page.items:
                    break
                for stream in page.items:
                    if await end_stream(stream.id) is not None:
                        ended.append(stream.id)
        if not await self._store.delete_user(user_id, at=utcnow()):
            raise NotFoundError("no such user", code="user_not_found")
        log.info("account deleted: %s (streams ended: %s)", user_id, ended or "none")
        return ended

    async def follow(self, *, user_id: str, follower_id: str) -> bool:
        if user_id == follower_id:
            raise ValidationFailed("you cannot follow yourself", code="follow_self")
        await self.get(user_id)
        return await self._store.follow(user_id=user_id, follower_id=follower_id, at=utcnow())

    async def unfollow(self, *, user_id: str, follower_id: str) -> bool:
        await self.get(user_id)
        return await self._store.unfollow(user_id=user_id, follower_id=follower_id)

    async def followers(self, user_id: str, *, cursor: str | None, limit: int) -> Page[Follow]:
        await self.get(user_id)
        return await self._store.list_followers(user_id, cursor=cursor, limit=limit)

    async def following(self, user_id: str, *, cursor: str | None, limit: int) -> Page[Follow]:
        await self.get(user_id)
        return await self._store.list_following(user_id, cursor=cursor, limit=limit)
