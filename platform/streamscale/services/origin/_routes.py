"""Origin routes: live playlists and media from the registry, recordings from disk.

    /live/<stream>/master.m3u8[?classic=1]   master_classic.m3u8
    /live/<stream>/<rendition>/index.m3u8     LL-HLS, blocking reload (_HLS_msn/_part),
                                              delta updates (_HLS_skip=YES|v2)
    /live/<stream>/<rendition>/classic.m3u8   init.mp4  <msn>.m4s  <msn>.<part>.m4s
    /vod/<stream>/master.m3u8   /vod/<stream>/<rendition>/{index.m3u8,init.mp4,<msn>.m4s}
    /steering/<stream>.json     content-steering manifest (with CDNs configured), held
                                while the player's _HLS_pathway is already the first

With CDNs configured (`steering`, `admission`): the live master lists every pathway
(cdn/steering.py), and a /live/ request without `x-streamscale-edge` is a direct viewer,
admitted up to the origin's limit (_admission.py) and recorded for the viewer counts.

Caching a CDN can obey: media is immutable (a URI never names other bytes), live
playlists live one second, a blocking-reload answer longer (its URL names the msn/part it
waited for, so any copy of it still holds that part), errors are not stored except 404s
for a second, which keeps a stampede for a future segment off the origin.
"""

from __future__ import annotations

import re

import trio

from ...protocols.hls import (
    PLAYLIST_URI,
    Availability,
    BlockingRequest,
    HLSError,
    Rendition,
    parse_query,
    parse_resource,
)
from .._metrics import metrics_reply
from ..cdn.records import UsageRecorder
from ..cdn.sessions import session_id
from ..cdn.steering import Steering
from ..lean_http import CORS, Head, Holds, Reply, Request, text_reply
from ._admission import EDGE_HEADER, Admission
from ._metrics import OriginStats
from ._vod import VodFiles
from .registry import STREAM_ID_RE, MediaRegistry

_RENDITION_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_MPEGURL = (b"content-type", b"application/vnd.apple.mpegurl")
_IMMUTABLE = (b"cache-control", b"public, max-age=31536000, immutable")
PLAYLIST = Head(200, [_MPEGURL, (b"cache-control", b"max-age=1"), CORS])
BLOCKING_PLAYLIST = Head(200, [_MPEGURL, (b"cache-control", b"public, max-age=30"), CORS])
VOD_PLAYLIST = Head(200, [_MPEGURL, (b"cache-control", b"public, max-age=60"), CORS])
INIT = Head(200, [(b"content-type", b"video/mp4"), _IMMUTABLE, CORS])
MEDIA = Head(200, [(b"content-type", b"video/iso.segment"), _IMMUTABLE, CORS])
STEERING = Head(200, [(b"content-type", b"application/json"), (b"cache-control", b"no-store"),
                      CORS])
NOT_FOUND = Head(404, [(b"content-type", b"text/plain; charset=utf-8"),
                       (b"cache-control", b"max-age=1"), CORS])


_PLAIN_RELOAD = BlockingRequest()


def not_found(message: str = "not found") -> Reply:
    return text_reply(NOT_FOUND, message)


class OriginRoutes:
    """The request handler: (request, holds) -> (head, body)."""

    def __init__(
        self,
        registry: MediaRegistry,
        vod: VodFiles | None,
        *,
        steering: Steering | None = None,
        admission: Admission | None = None,
        recorder: UsageRecorder | None = None,
        stats: OriginStats | None = None,
    ) -> None:
        self.registry = registry
        self.vod = vod
        self.steering = steering
        self.admission = admission
        self.recorder = recorder
        self.stats = stats if stats is not None else OriginStats()
        self.stats.admission = admission

    async def __call__(self, request: Request, holds: Holds) -> Reply:
        reply = await self._route(request, holds)
        stats = self.stats  # /metrics (_metrics.py): a few int increments per request
        stats.requests += 1
        if isinstance(reply, tuple):
            status, body = reply[0].status, reply[1]
        else:
            status, body = reply.status, reply.body
        stats.statuses[status // 100 if 100 <= status < 600 else 0] += 1
        if request.method == b"GET":
            stats.sent_bytes += len(body)
        return reply

    async def _route(self, request: Request, holds: Holds) -> Reply:
        path, _, query = request.target.partition(b"?")
        try:
            parts = path.decode("ascii").split("/")
        except UnicodeDecodeError:
            return not_found()
        if len(parts) == 3 and parts[1] == "steering" and not parts[0]:
            return await self._steering(parts[2], query, holds)
        if len(parts) < 4 or parts[0] or not STREAM_ID_RE.fullmatch(parts[2]):
            return metrics_reply() if path == b"/metrics" else not_found()
        if parts[1] == "live":
            if self.admission is None or request.header(EDGE_HEADER) is not None:
                return await self._live(parts[2], parts[3:], query, holds)
            return await self._direct(request, parts, query, holds)
        if parts[1] == "vod" and self.vod is not None:
            return await self._vod(self.vod, parts[2], parts[3:])
        return not_found()

    async def _steering(self, name: str, query: bytes, holds: Holds) -> Reply:
        """The steering manifest; held while the player's pathway is already the first
        (cdn/steering.py), answered at once when health changes."""
        steering = self.steering
        stream_id = name.removesuffix(".json")
        if (steering is None or stream_id == name or not STREAM_ID_RE.fullmatch(stream_id)
                or stream_id not in self.registry):
            return not_found()
        pathway = next((item[13:] for item in query.split(b"&")
                        if item.startswith(b"_HLS_pathway=")), None)
        if pathway is not None and not steering.news_for(pathway.decode("latin-1")):
            version = steering.health.version
            with holds.hold(trio.current_time() + steering.hold_s):
                await steering.health.wait_for_change(version)
        return STEERING, steering.manifest(stream_id)

    async def _direct(
        self, request: Request, parts: list[str], query: bytes, holds: Holds
    ) -> Reply:
        """A viewer fetching from the origin itself: admitted up to the limit, recorded."""
        assert self.admission is not None
        session = session_id(request.target, request.headers, request.peer)
        if not self.admission.admit(session):
            return self.admission.full()
        reply = await self._live(parts[2], parts[3:], query, holds)
        if self.recorder is not None and isinstance(reply, tuple) and reply[0].status == 200:
            self.recorder.record(parts[2], parts[3] if len(parts) == 5 else "", session,
                                 len(reply[1]))
        return reply

    async def _live(self, stream_id: str, rest: list[str], query: bytes, holds: Holds) -> Reply:
        presentation = self.registry.lookup(stream_id)
        if presentation is None:
            if self.steering is not None:
                self.steering.forget(stream_id)
            return not_found("unknown stream")
        if len(rest) == 1:
            self.stats.master += 1
            if rest[0] == "master.m3u8":
                low_latency = b"classic=1" not in query.split(b"&")
            elif rest[0] == "master_classic.m3u8":
                low_latency = False
            else:
                return not_found()
            if self.steering is not None and self.steering.active:
                return PLAYLIST, self.steering.master(stream_id, presentation,
                                                      low_latency=low_latency)
            return PLAYLIST, presentation.master_playlist(low_latency=low_latency)
        if len(rest) != 2:
            return not_found()
        rendition = presentation.get(rest[0])
        if rendition is None:
            return not_found("unknown rendition")
        name = rest[1]
        if name == PLAYLIST_URI:
            return await self._media_playlist(stream_id, rendition, query, holds)
        if name == "classic.m3u8":
            self.stats.playlist += 1
            return PLAYLIST, rendition.media_playlist(low_latency=False)
        return await self._resource(stream_id, rendition, name, holds)

    async def _media_playlist(
        self, stream_id: str, rendition: Rendition, query: bytes, holds: Holds
    ) -> Reply:
        try:
            req = parse_query(query) if query else _PLAIN_RELOAD
            rendition.check_request(req)
        except HLSError as exc:
            self.stats.playlist += 1
            return text_reply(exc.status, str(exc))
        stats = self.stats
        if req.msn is None:
            stats.playlist += 1
        else:
            stats.blocking += 1
        deadline = trio.current_time() + rendition.blocking_timeout_s
        while not rendition.playlist_ready(req):
            version = self.registry.version(stream_id)
            stats.parked += 1
            try:
                with holds.hold(deadline) as scope:
                    await self.registry.wait_for_change(stream_id, version, rendition.name)
            finally:
                stats.parked -= 1
            if scope.cancelled_caught:
                return text_reply(503, "playlist not ready in time; retry")
            current = self._rendition(stream_id, rendition.name)
            if current is None:
                return not_found("stream is gone")
            rendition = current
        # A delta update (`_HLS_skip`) is its own URL, so caches key it apart from the full
        # playlist; combined with _HLS_msn it is the blocking answer, cached as one.
        body = rendition.media_playlist(skip=req.skip or False)
        return PLAYLIST if req.msn is None else BLOCKING_PLAYLIST, body

    async def _resource(
        self, stream_id: str, rendition: Rendition, name: str, holds: Holds
    ) -> Reply:
        """Serve a part or segment; hold the request while it is the one being made."""
        if name.endswith(".mp4"):
            self.stats.init += 1
        elif name.count(".") == 2:  # <msn>.<part>.m4s
            self.stats.part += 1
        else:
            self.stats.segment += 1
        deadline = None
        current: Rendition | None = rendition
        while current is not None:
            status, data = current.resource(name)
            if status is Availability.AVAILABLE and data is not None:
                return INIT if name.endswith(".mp4") else MEDIA, data  # init[-N].mp4
            if status is Availability.EXPIRED:
                return not_found("expired")
            if status is not Availability.PENDING:
                return not_found()
            if deadline is None:
                deadline = trio.current_time() + current.blocking_timeout_s
            version = self.registry.version(stream_id)
            with holds.hold(deadline) as scope:
                await self.registry.wait_for_change(stream_id, version, current.name)
            if scope.cancelled_caught:
                return text_reply(503, "not ready in time; retry")
            current = self._rendition(stream_id, rendition.name)
        return not_found("stream is gone")

    def _rendition(self, stream_id: str, name: str) -> Rendition | None:
        presentation = self.registry.lookup(stream_id)
        return None if presentation is None else presentation.get(name)

    async def _vod(self, vod: VodFiles, stream_id: str, rest: list[str]) -> Reply:
        if rest == ["master.m3u8"]:
            relative, head = f"{stream_id}/master.m3u8", VOD_PLAYLIST
        elif len(rest) == 2 and _RENDITION_RE.fullmatch(rest[0]):
            name = rest[1]
            ref = parse_resource(name)
            if name == PLAYLIST_URI:
                head = VOD_PLAYLIST
            elif ref is not None and ref.kind == "init":
                head = INIT
            elif ref is not None and ref.kind == "segment":
                head = MEDIA
            else:
                return not_found()
            relative = f"{stream_id}/{rest[0]}/{name}"
        else:
            return not_found()
        data = await vod.read(relative)
        if data is None:
            return not_found("no such recording")
        return head, data
