"""JWT access tokens signed by a rotating key ring.

Access tokens are short-lived HS256 JWTs whose header names the signing key (`kid`).
Keys live in the store so every gateway process shares them. Rotation adds a new key
that signs from then on; older keys keep verifying until `key_retire_s` after the
rotation, which is at least the access-token lifetime, so rotating logs nobody out.
Refresh tokens are opaque random strings (see users service), not JWTs.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
import trio

from ..backends.storage import SigningKey, Store
from ..config import AuthConfig
from .clock import epoch_s, utcnow
from .errors import Unauthorized

log = logging.getLogger(__name__)

ALGORITHM = "HS256"
_RELOAD_MIN_INTERVAL_S = 1.0  # unknown kids reload the ring at most this often


@dataclass(frozen=True, kw_only=True)
class AccessClaims:
    user_id: str
    username: str
    expires_at: float


class KeyRing:
    """Signs with the newest key; verifies with any key not yet retired."""

    def __init__(self, store: Store, config: AuthConfig) -> None:
        self._store = store
        self._config = config
        self._keys: dict[str, SigningKey] = {}
        self._newest: SigningKey | None = None
        self._last_miss_reload_s = float("-inf")
        self._lock = trio.Lock()

    async def load(self) -> None:
        """Load the keys, making the first one if the store has none."""
        await self._reload()
        if self._newest is None:
            await self.rotate()

    async def _reload(self) -> None:
        keys = await self._store.list_signing_keys(now=utcnow())
        self._keys = {k.kid: k for k in keys}
        self._newest = keys[0] if keys else None

    async def rotate(self) -> SigningKey:
        """Make a new signing key; the previous ones retire after key_retire_s."""
        async with self._lock:
            now = utcnow()
            key = SigningKey(
                kid=secrets.token_hex(8), secret=secrets.token_bytes(32),
                created_at=now, retires_at=None,
            )
            retire_at = now + timedelta(seconds=self._config.key_retire_s)
            await self._store.add_signing_key(key, retire_others_at=retire_at)
            await self._reload()
            log.info("signing key rotated: new kid %s", key.kid)
            return key

    async def maintain(self) -> None:
        """Rotate when the newest key is older than key_rotation_s; pick up peers' keys."""
        check_every_s = min(60.0, self._config.key_rotation_s / 10)
        while True:
            await trio.sleep(check_every_s)
            await self._reload()
            newest = self._newest
            age_s = (utcnow() - newest.created_at).total_seconds() if newest else None
            if age_s is None or age_s >= self._config.key_rotation_s:
                await self.rotate()

    @property
    def kids(self) -> list[str]:
        return list(self._keys)

    def sign(self, *, user_id: str, username: str) -> tuple[str, int]:
        """A new access token and its lifetime in seconds."""
        key = self._newest
        if key is None:
            raise RuntimeError("KeyRing.load() was not awaited")
        now = int(epoch_s())
        ttl_s = self._config.access_ttl_s
        claims = {
            "sub": user_id, "name": username, "iat": now, "exp": now + ttl_s,
            "iss": self._config.issuer, "typ": "access",
        }
        token = jwt.encode(claims, key.secret, algorithm=ALGORITHM, headers={"kid": key.kid})
        return token, ttl_s

    async def verify(self, token: str) -> AccessClaims:
        """Claims of a valid access token, or Unauthorized saying what is wrong."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise Unauthorized("malformed access token", code="invalid_token") from None
        if not isinstance(kid, str):
            raise Unauthorized("access token names no signing key", code="invalid_token")
        key = self._keys.get(kid)
        now_s = trio.current_time()
        if key is None and now_s - self._last_miss_reload_s >= _RELOAD_MIN_INTERVAL_S:
            # A key another gateway made since our last look; throttled so that forged
            # kids cannot turn every request into a database read.
            self._last_miss_reload_s = now_s
            await self._reload()
            key = self._keys.get(kid)
        if key is None:
            raise Unauthorized("access token signed by an unknown or retired key",
                               code="invalid_token")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key.secret, algorithms=[ALGORITHM], issuer=self._config.issuer,
                options={"require": ["exp", "iat", "sub", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("access token expired; refresh it", code="token_expired") from None
        except jwt.PyJWTError:
            raise Unauthorized("invalid access token", code="invalid_token") from None
        if claims.get("typ") != "access" or not isinstance(claims.get("sub"), str):
            raise Unauthorized("not an access token", code="invalid_token")
        return AccessClaims(
            user_id=claims["sub"], username=str(claims.get("name", "")),
            expires_at=float(claims["exp"]),
        )
