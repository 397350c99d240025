"""Streams: lifecycle (created -> live -> ended) and stream keys.

A stream key is shown once, at start or rotation; only its SHA-256 is stored (keys are
32 random bytes, so a fast hash is enough: nothing to brute-force). The media path asks
`authorize_publish` with the key a publisher sends, and moves the stream to live and to
ended with `mark_live` / `mark_ended`.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time

from ...backends.storage import Page, Store, Stream
from ...config import Config
from ..cdn.health import CdnHealth
from ..clock import new_id, utcnow
from ..errors import ApiError, ConflictError, Forbidden, NotFoundError

log = logging.getLogger(__name__)

KEY_PREFIX = "live_"
_CACHE_MAX = 10_000


def key_hash(stream_key: str) -> str:
    return hashlib.sha256(stream_key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class StreamService:
    """Stream lifecycle. Reads by id are served from a short-lived cache (`read_cache_s`):
    viewers poll stream state far more often than it changes, and the seed's answer to
    hot reads is a cache. Writes through this service invalidate it at once; another
    process's writes show within `read_cache_s`."""

    def __init__(
        self, store: Store, config: Config, *, read_cache_s: float = 1.0,
        cdn_health: CdnHealth | None = None,
    ) -> None:
        self._store = store
        self._config = config
        self._cdn_health = cdn_health
        self._read_cache_s = read_cache_s
        self._cache: dict[str, tuple[float, Stream]] = {}

    def playback_url(self, stream_id: str) -> str:
        """The master on the entry edge of the first CDN up (content steering moves the
        player on from there), or on the origin when every CDN is down or none is set."""
        tail = f"/live/{stream_id}/master.m3u8"
        first = self._cdn_health.first_up() if self._cdn_health is not None else None
        if first is not None:
            return first[1] + tail
        from ...runtime import current_resources

        try:
            origin = current_resources().service_url("origin", "hls", self._config.origin_url)
        except RuntimeError:  # outside the runtime (an app built by a test)
            origin = self._config.origin_url
        return origin.rstrip("/") + tail

    @property
    def ingest_url(self) -> str:
        """Where casters publish: the ingest's bound URL when it runs in this process (port
        0 in the config means "any free port"), else the configured one."""
        from ...runtime import current_resources

        try:
            return current_resources().service_url("media", "rtmp", self._config.rtmp_url)
        except RuntimeError:  # outside the runtime (an app built by a test)
            return self._config.rtmp_url

    async def start(
        self, *, user_id: str, title: str, category: str, tags: list[str]
    ) -> tuple[Stream, str]:
        key = new_key()
        now = utcnow()
        stream = Stream(
            id=new_id(), user_id=user_id, title=title, category=category, tags=tuple(tags),
            quality="source", status="created", key_hash=key_hash(key), key_rotated_at=now,
            created_at=now, started_at=None, ended_at=None, viewer_count=0, peak_viewers=0,
        )
        await self._store.create_stream(stream)
        log.info("stream %s created by %s", stream.id, user_id)
        return stream, key

    async def get(self, stream_id: str, *, fresh: bool = False) -> Stream:
        now = time.monotonic()
        cached = self._cache.get(stream_id)
        if cached is not None and cached[0] > now and not fresh:
            return cached[1]
        stream = await self._store.get_stream(stream_id)
        if stream is None:
            raise NotFoundError("no such stream", code="stream_not_found")
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()  # crude bound; entries live a second anyway
        self._cache[stream_id] = (now + self._read_cache_s, stream)
        return stream

    def _forget(self, stream_id: str) -> None:
        self._cache.pop(stream_id, None)

    async def _owned(self, user_id: str, stream_id: str) -> Stream:
        stream = await self.get(stream_id, fresh=True)
        if stream.user_id != user_id:
            raise Forbidden("only the stream's owner may do that", code="not_stream_owner")
        return stream

    async def stop(self, *, user_id: str, stream_id: str) -> Stream:
        """End the stream (idempotent: stopping an ended stream returns it as it is)."""
        stream = await self._owned(user_id, stream_id)
        if stream.status == "ended":
            return stream
        return await self.mark_ended(stream_id) or await self.get(stream_id, fresh=True)

    async def rotate_key(self, *, user_id: str, stream_id: str) -> tuple[Stream, str]:
        """A new key; the old one stops working at once (a live publisher is cut off)."""
        stream = await self._owned(user_id, stream_id)
        if stream.status == "ended":
            raise ConflictError("the stream has ended; start a new one", code="stream_ended")
        key = new_key()
        self._forget(stream_id)
        stream = await self._store.set_stream_key(stream_id, key_hash=key_hash(key), at=utcnow())
        log.info("stream %s key rotated", stream_id)
        return stream, key

    async def list(
        self, *, user_id: str | None, status: str | None, category: str | None,
        cursor: str | None, limit: int,
    ) -> Page[Stream]:
        return await self._store.list_streams(
            user_id=user_id, status=status, category=category, cursor=cursor, limit=limit
        )

    # the media path -----------------------------------------------------------------
    async def authorize_publish(self, stream_key: str) -> Stream:
        """The stream a key may publish to, or ApiError saying why not."""
        stream = await self._store.get_stream_by_key_hash(key_hash(stream_key))
        if stream is None:
            raise ApiError("unknown or revoked stream key", status=403, code="bad_stream_key")
        if stream.status == "ended":
            raise ApiError("the stream has ended; start a new one", status=409,
                           code="stream_ended")
        return stream

    async def mark_live(self, stream_id: str) -> Stream | None:
        self._forget(stream_id)
        at = utcnow()
        stream = await self._store.set_stream_status(
            stream_id, status="live", expected=("created", "live"), at=at
        )
        if stream is not None and stream.started_at == at:  # first time, not a reconnect
            from ..social import announce_live  # social's routes import this module

            await announce_live(self._store, stream)  # tells followers (never raises)
        return stream

    async def mark_ended(self, stream_id: str) -> Stream | None:
        self._forget(stream_id)
        stream = await self._store.set_stream_status(
            stream_id, status="ended", expected=("created", "live"), at=utcnow()
        )
        if stream is not None:
            log.info("stream %s ended", stream_id)
        return stream
