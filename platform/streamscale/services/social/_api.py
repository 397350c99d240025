"""HTTP routes of the social service: notifications, following live, recommendations, history.

`GET /api/me/notifications` is a server-sent event stream (text/event-stream): one
`event: live` per followed streamer going live, `: keepalive` comments every
`HEARTBEAT_S` so proxies keep it open, `event: resync` when this gateway may have missed
events (refetch `GET /api/me/following/live`). Each event has an `id`; a client that
reconnects with `Last-Event-ID` (EventSource does this itself) first gets the events it
missed whose streams are still live; streams that went live and ended while it was away
are not replayed. `event: expired` ends the stream when the access token it was opened
with expires.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from functools import partial

import trio
from quart import Blueprint, Response, current_app, request
from quart_schema import (
    document_response,
    security_scheme,
    tag,
    validate_querystring,
    validate_response,
)

from ...backends.bus import BusError
from ...backends.storage import StreamCard, Watch
from ..api import PageQuery, authenticate, deps, errors
from ..clock import epoch_s
from ..errors import ApiError
from ..streaming import StreamService
from ._abort import abort_connection
from ._schemas import (
    LimitQuery,
    LiveListOut,
    LiveStreamOut,
    RecommendationOut,
    RecommendationsOut,
    RecommendQuery,
    StreamerOut,
    WatchOut,
    WatchPageOut,
    WentLiveOut,
)
from ._service import Recommendation, SocialService
from .events import WentLive, parse_event_id
from .feed import CLOSED, RESYNC, LiveFeed

log = logging.getLogger(__name__)

bp = Blueprint("social", __name__, url_prefix="/api")
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
HEARTBEAT_S = 15.0  # under the 30-60 s idle timeouts common in proxies and load balancers
RETRY_MS = 3000  # how long EventSource waits before reconnecting
CONNECTIONS_PER_USER = 8  # per gateway process: tabs and devices, not an unbounded fan
OPENAPI_CONTENT_TYPE = "streamscale_openapi_content_type"  # read by gateway/_openapi.py


class _Social:
    """Per app: the service, and the went-live feed started on the first connection."""

    def __init__(self, service: SocialService) -> None:
        self.service = service
        self.feed: LiveFeed | None = None
        self.heartbeat_s = HEARTBEAT_S


def _social() -> _Social:
    services = deps().services
    social: _Social | None = services.get("social")
    if social is None:
        social = services["social"] = _Social(SocialService(deps().store))
    return social


def _streams() -> StreamService:
    svc: StreamService = deps().services["streams"]
    return svc


def _card_out(card: StreamCard) -> LiveStreamOut:
    s = card.stream
    return LiveStreamOut(
        id=s.id, title=s.title, category=s.category, tags=list(s.tags),
        started_at=s.started_at, viewer_count=s.viewer_count,
        playback_url=_streams().playback_url(s.id),
        streamer=StreamerOut(id=s.user_id, username=card.username,
                             display_name=card.display_name),
    )


def _rec_out(rec: Recommendation) -> RecommendationOut:
    return RecommendationOut(stream=_card_out(rec.card), basis=rec.basis,  # type: ignore[arg-type]
                             reason=rec.reason)


def _watch_out(w: Watch) -> WatchOut:
    return WatchOut(stream_id=w.stream_id, category=w.category, first_at=w.first_at,
                    last_at=w.last_at, watches=w.watches)


@bp.get("/me/following/live")
@tag(["followers"])
@security_scheme(BEARER)
@validate_querystring(LimitQuery)
@validate_response(LiveListOut)
@errors(400, 401)
async def following_live(query_args: LimitQuery) -> LiveListOut:
    """Streamers you follow who are live now, most viewers first."""
    claims = await authenticate()
    cards = await _social().service.following_live(claims.user_id, limit=query_args.limit)
    return LiveListOut(items=[_card_out(c) for c in cards])


@bp.get("/me/recommendations")
@tag(["followers"])
@security_scheme(BEARER)
@validate_querystring(RecommendQuery)
@validate_response(RecommendationsOut)
@errors(400, 401)
async def recommendations(query_args: RecommendQuery) -> RecommendationsOut:
    """Live streams for you, in two groups, each item with the reason it is there.

    "because you follow": live streams of the streamers you follow, then live streams in
    the categories they stream in. "popular in categories you watch": live streams, most
    viewers first, in the categories of the streams you watched (POST
    /api/streams/{stream_id}/watch), without those of the first group.
    """
    claims = await authenticate()
    recs = await _social().service.recommend(claims.user_id, limit=query_args.limit)
    return RecommendationsOut(
        because_you_follow=[_rec_out(r) for r in recs.because_you_follow],
        popular_in_categories_you_watch=[_rec_out(r) for r in recs.popular_in_categories_you_watch],
    )


@bp.post("/streams/<id:stream_id>/watch")
@tag(["followers"])
@security_scheme(BEARER)
@validate_response(WatchOut)
@errors(400, 401, 404, 409)
async def watch(stream_id: str) -> WatchOut:
    """Record that you watched a stream (players call it when playback starts).

    Feeds "popular in categories you watch". Live and ended streams count; one that has
    not started is a 409.
    """
    claims = await authenticate()
    return _watch_out(await _social().service.record_watch(user_id=claims.user_id,
                                                           stream_id=stream_id))


@bp.get("/me/history")
@tag(["followers"])
@security_scheme(BEARER)
@validate_querystring(PageQuery)
@validate_response(WatchPageOut)
@errors(400, 401)
async def history(query_args: PageQuery) -> WatchPageOut:
    """Streams you watched, most recently watched first, paginated by cursor."""
    claims = await authenticate()
    page = await _social().service.history(claims.user_id, cursor=query_args.cursor,
                                           limit=query_args.limit)
    return WatchPageOut(items=[_watch_out(w) for w in page.items], next_cursor=page.next_cursor)


@bp.get("/me/notifications")
@tag(["followers"])
@security_scheme(BEARER)
@document_response(WentLiveOut)
@errors(400, 401, 429, 503)
async def notifications() -> Response:
    """Server-sent events: `event: live` when a streamer you follow goes live.

    The data of each event is a JSON object (the schema here); `: keepalive` comments
    come every 15 s; `event: resync` means events may have been lost (refetch GET
    /api/me/following/live). Reconnect with `Last-Event-ID` to be replayed the missed
    events whose streams are still live. A client that falls 64 events behind is
    dropped (its connection is closed); it reconnects like any other. At most 8
    streams per user at once (429). The stream ends with `event: expired` when the access
    token expires: reconnect with a fresh one.
    """
    claims = await authenticate()
    since: tuple[datetime, str] | None = None
    last = request.headers.get("Last-Event-ID", "").strip()
    if last:
        try:
            since = parse_event_id(last)
        except ValueError:
            raise ApiError("Last-Event-ID is not an id this server sent",
                           code="invalid_last_event_id") from None
    social = _social()
    feed = await _feed(social)
    if feed.connections_of(claims.user_id) >= CONNECTIONS_PER_USER:
        raise ApiError(f"at most {CONNECTIONS_PER_USER} notification streams per user; "
                       "close one first", status=429, code="too_many_streams")
    # The body runs after the view, outside the app context: hand it what it needs.
    abort = partial(abort_connection, request.scope.get("client"), request.scope.get("server"))
    token_left_s = max(0.0, claims.expires_at - epoch_s())
    response = Response(_events(social, feed, _streams(), claims.user_id, since, abort,
                                token_left_s),
                        content_type="text/event-stream; charset=utf-8",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    response.timeout = None  # quart's RESPONSE_TIMEOUT would cut the stream at 60 s
    return response


setattr(notifications, OPENAPI_CONTENT_TYPE, "text/event-stream")


async def _feed(social: _Social) -> LiveFeed:
    from ...runtime import current_resources, shutdown_requested

    # The feed outlives requests: it runs in the app's nursery (quart-trio, while serving).
    nursery: trio.Nursery | None = getattr(current_app, "nursery", None)
    try:
        if nursery is None:
            raise RuntimeError("the app is not being served")
        if social.feed is None:
            social.feed = LiveFeed(deps().store, await current_resources().bus())
        await social.feed.ensure_running(nursery, shutdown_requested())
    except (RuntimeError, BusError) as exc:  # RuntimeError: no runtime resources (a bare app)
        log.warning("notifications unavailable: %s", exc)
        raise ApiError("notifications are unavailable here; fetch GET "
                       "/api/me/following/live instead", status=503,
                       code="notifications_unavailable") from None
    return social.feed


def _sse(event: WentLive, streams: StreamService) -> bytes:
    data = WentLiveOut(
        stream_id=event.stream_id, title=event.title, category=event.category,
        started_at=event.started_at, playback_url=streams.playback_url(event.stream_id),
        streamer=StreamerOut(id=event.user_id, username=event.username,
                             display_name=event.display_name),
    ).model_dump_json()
    return f"id: {event.event_id}\nevent: live\ndata: {data}\n\n".encode()


async def _events(social: _Social, feed: LiveFeed, streams: StreamService, user_id: str,
                  since: tuple[datetime, str] | None, abort: Callable[[], object],
                  token_left_s: float) -> AsyncIterator[bytes]:
    """The stream's body; it ends (`event: expired`) when the access token it was opened
    with expires, so a revoked or deleted account does not keep listening."""
    expires = trio.current_time() + token_left_s
    with feed.listen(user_id, abort=abort) as listener:  # registered before anything is sent
        yield f"retry: {RETRY_MS}\n: connected\n\n".encode()
        replayed: set[str] = set()
        if since is not None:
            for event in await social.service.missed(user_id, since=since[0],
                                                     last_stream_id=since[1]):
                replayed.add(event.stream_id)
                yield _sse(event, streams)
        while True:
            left_s = expires - trio.current_time()
            if left_s <= 0:
                yield b"event: expired\ndata: {}\n\n"
                return
            item = None
            with trio.move_on_after(min(social.heartbeat_s, left_s)):
                item = await listener.next()
            if item is None:
                if trio.current_time() < expires:
                    yield b": keepalive\n\n"
            elif item is RESYNC:
                yield b"event: resync\ndata: {}\n\n"
            elif isinstance(item, WentLive):
                if item.stream_id not in replayed:
                    yield _sse(item, streams)
            elif item is CLOSED:
                return
