"""The went-live event: what the media path publishes on the bus when a stream goes live.

One topic (`TOPIC`) for every stream: each gateway process subscribes once and picks out
its own connected followers (services/social/feed.py), so a go-live costs one publish
however many gateways and followers there are.

The event carries everything a notification shows except the playback URL, which each
gateway makes itself (it knows which CDN is up: StreamService.playback_url).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import trio

from ...backends.storage import Store, Stream

log = logging.getLogger(__name__)

TOPIC = "social.live"
ANNOUNCE_TIMEOUT_S = 2.0  # a stuck broker must not hold the publisher's go-live up
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, kw_only=True)
class WentLive:
    stream_id: str
    user_id: str  # the streamer
    username: str
    display_name: str
    title: str
    category: str
    started_at: datetime

    @property
    def event_id(self) -> str:
        """The SSE id: start time in microseconds, then the stream id, so a reconnecting
        client's Last-Event-ID says from when to replay (`parse_event_id`)."""
        return f"{(self.started_at - _EPOCH) // _MICROSECOND}-{self.stream_id}"

    def encode(self) -> bytes:
        return json.dumps({
            "stream_id": self.stream_id, "user_id": self.user_id, "username": self.username,
            "display_name": self.display_name, "title": self.title,
            "category": self.category, "started_at": self.started_at.isoformat(),
        }, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, payload: bytes) -> WentLive:
        """ValueError if the payload is not a went-live event."""
        try:
            raw: Any = json.loads(payload)
            fields = {k: raw[k] for k in ("stream_id", "user_id", "username", "display_name",
                                          "title", "category")}
            started_at = datetime.fromisoformat(raw["started_at"])
        except (KeyError, TypeError, ValueError) as exc:  # ValueError: JSON, UTF-8, time
            raise ValueError(f"not a went-live event: {exc}") from None
        if not all(isinstance(v, str) for v in fields.values()) or started_at.tzinfo is None:
            raise ValueError("not a went-live event: bad field types")
        return cls(started_at=started_at.astimezone(UTC), **fields)


def parse_event_id(value: str) -> tuple[datetime, str]:
    """(started_at, stream_id) of an SSE id made by `WentLive.event_id`; ValueError if not."""
    micros, sep, stream_id = value.partition("-")
    if not sep or not micros.isdigit() or len(micros) > 16 or not stream_id.isalnum() \
            or len(stream_id) > 64:
        raise ValueError("not an event id")
    return _EPOCH + int(micros) * _MICROSECOND, stream_id


async def announce_live(store: Store, stream: Stream) -> None:
    """Publish that `stream` went live. Never raises: a lost notification must not fail
    the publish (followers still see the stream in GET /api/me/following/live)."""
    from ...runtime import current_resources

    if stream.started_at is None:
        return
    try:
        resources = current_resources()
    except RuntimeError:  # a service built outside the runtime (tests): no bus to tell
        return
    try:
        with trio.move_on_after(ANNOUNCE_TIMEOUT_S) as scope:
            user = await store.get_user(stream.user_id)
            if user is None:  # deleted meanwhile: nobody follows a tombstone
                return
            event = WentLive(
                stream_id=stream.id, user_id=user.id, username=user.username,
                display_name=user.display_name, title=stream.title,
                category=stream.category, started_at=stream.started_at)
            bus = await resources.bus()
            await bus.publish(TOPIC, event.encode())
        if scope.cancelled_caught:
            log.warning("went-live of stream %s not announced within %.1f s", stream.id,
                        ANNOUNCE_TIMEOUT_S)
    except Exception:  # any failure here only costs the notification
        log.exception("went-live of stream %s not announced", stream.id)
