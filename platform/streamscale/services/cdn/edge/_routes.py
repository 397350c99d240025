"""The edge's request handler: cache hit, or join (or start) the one upstream fetch for
the object; access records; health and fault drills.

A hit is a dict lookup and a prebuilt answer. A miss parks the request on the fetch in
flight for its key (a held request: blocking reloads and preload-hinted parts wait at
the origin, so every viewer parked here is answered when the origin answers); the fetch
runs in the edge's own nursery, so a viewer leaving does not cancel it for the others.
When it has a small answer it writes it to every parked viewer's socket in one pass
(`Request.deliver`): 5,000 parked blocking reloads are answered ~50 ms after the upstream
answers here, where a wake-up and send per waiter took 300-500 ms.

Not done: Range requests get the whole object (200; the platform's playlists never use
byte ranges), and stale entries are refetched rather than revalidated.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Literal

import trio

from ..._metrics import metrics_reply
from ...lean_http import Head, Holds, HTTPServer, Ready, Reply, Request, text_reply
from ..records import UsageRecorder
from ..sessions import cache_target, session_id
from ._cache import Cache, EdgeStats, Entry, HeadCache, freshness_s
from ._upstream import Answer, Upstream

log = logging.getLogger(__name__)

Fault = Literal["down", "blackhole"] | None
FAULTS = (None, "down", "blackhole")

_STREAM_RE = re.compile(rb"[A-Za-z0-9_-]{1,64}")
_TARGET_DURATION = b"#EXT-X-TARGETDURATION:"
_HOLD_TARGETS = 3.0  # the origin holds a request up to 3 target durations, then 503s
# A blocking reload's answer (`?_HLS_msn=N[&_HLS_part=M]`, no delta skip) is the newest
# full playlist there is: it also becomes the plain URL's entry, for a second, so a viewer
# joining through this edge starts from it instead of a copy up to its max-age (1 s: three
# parts) old, which would put them that much further behind the live edge for good.
_BLOCKING_QUERY = re.compile(rb"_HLS_msn=\d+(?:&_HLS_part=\d+)?")
_FRESHEST_CACHE_CONTROL = b"max-age=1"
# ... and a plain live playlist is kept at most one part target, whatever its max-age (whole
# seconds: 1 s is three parts): a rendition nobody blocks on is refreshed by joins only.
_PART_TARGET = b"#EXT-X-PART-INF:PART-TARGET="


def _part_target_s(playlist: bytes) -> float:
    """The LL-HLS part target a playlist declares (inf when none: not a live LL playlist)."""
    start = playlist.find(_PART_TARGET, 0, 1024)
    if start < 0:
        return math.inf
    start += len(_PART_TARGET)
    end = start
    while end < len(playlist) and playlist[end] in b"0123456789.":
        end += 1
    try:
        return float(playlist[start:end])
    except ValueError:
        return math.inf
_HOLD_MARGIN_S = 2.0
_DEFAULT_TARGET_S = 6.0  # before the edge has seen a stream's playlist
_OK = Ready(Head(200, [(b"content-type", b"text/plain; charset=utf-8"),
                       (b"cache-control", b"no-store")]), b"ok\n")
_SHUTTING_DOWN = text_reply(503, "edge shutting down; retry")


class _Fetch:
    """One upstream request in flight and the viewers waiting for it."""

    __slots__ = ("done", "reply", "waiters")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.reply: Reply = _SHUTTING_DOWN  # replaced when the upstream answers
        # the requests parked on it (insertion-ordered; a leaving one removes itself, so
        # the fetch never writes to a connection that has gone)
        self.waiters: dict[Request, None] = {}

    def deliver(self) -> None:
        """Write a small answer to every waiter in one pass (Request.deliver)."""
        reply = self.reply
        if isinstance(reply, Ready) and reply.whole:
            for request in self.waiters:
                request.deliver(reply)


def route(path: bytes) -> tuple[str, str] | None:
    """`/live/<stream>[/<rendition>]/<name>` -> (stream, rendition or "" for the master);
    `/vod/...` -> ("", ""); None for anything the edge does not forward."""
    parts = path.split(b"/")
    if len(parts) < 4 or parts[0] or not _STREAM_RE.fullmatch(parts[2]) or not path.isascii():
        return None
    if parts[1] == b"vod":
        return "", ""
    if parts[1] != b"live":
        return None
    return parts[2].decode(), parts[3].decode() if len(parts) > 4 else ""


class EdgeRoutes:
    def __init__(
        self, name: str, upstream: Upstream, cache_bytes: int,
        recorder: UsageRecorder | None, fetchers: trio.Nursery,
    ) -> None:
        self.name = name
        self.upstream = upstream
        self.recorder = recorder
        self.stats = EdgeStats()
        self.cache = Cache(cache_bytes, self.stats)
        self.fault: Fault = None
        self.restored = trio.Event()
        self.restored.set()
        self._heads = HeadCache()
        self._fetchers = fetchers
        self._inflight: dict[bytes, _Fetch] = {}
        self._target_s: dict[str, float] = {}  # stream -> target duration seen upstream

    def waiting(self) -> int:
        """Requests parked on upstream fetches now (a gauge; tests sync on it)."""
        return sum(len(f.waiters) for f in self._inflight.values())

    def inflight(self) -> int:
        return len(self._inflight)

    async def __call__(self, request: Request, holds: Holds) -> Reply:
        if self.fault is not None:
            reply = await self._faulted(holds)
            if reply is not None:
                return reply
        target = request.target
        key = cache_target(target)
        entry = self.cache.get(key, trio.current_time())
        if entry is not None:
            self.stats.hits += 1
            if entry.stream_id and self.recorder is not None and entry.reply.status < 300:
                self.recorder.record(
                    entry.stream_id, entry.rendition,
                    session_id(target, request.headers, request.peer),
                    len(entry.reply.body) if request.method == b"GET" else 0)
            return entry.reply
        if target == b"/healthz":
            return _OK
        if target == b"/metrics":
            return metrics_reply()
        where = route(key.partition(b"?")[0])
        if where is None:
            return text_reply(404, "not found")
        stream_id, rendition = where
        fetch = self._inflight.get(key)
        stats = self.stats
        stats.misses += 1
        timeout_s = self._timeout_s(stream_id)
        if fetch is None:
            fetch = self._inflight[key] = _Fetch()
            self._fetchers.start_soon(self._fetch, key, fetch, stream_id, rendition, timeout_s)
        else:
            stats.coalesced += 1
        fetch.waiters[request] = None
        try:
            with holds.hold(trio.current_time() + timeout_s + 1.0) as scope:
                await fetch.done.wait()
        finally:
            del fetch.waiters[request]
        if scope.cancelled_caught:  # shutdown's grace ran out, or the edge went down
            reply = self._down() if self.fault == "down" else _SHUTTING_DOWN
        else:
            reply = fetch.reply
            if self.fault == "blackhole":  # went dark while this one waited: no answer
                dark = await self._faulted(holds)
                if dark is not None:
                    return dark
        status = reply.status if isinstance(reply, Ready) else reply[0].status
        if stream_id and self.recorder is not None and status < 300:  # viewers, not 404 polls
            body = reply.body if isinstance(reply, Ready) else reply[1]
            self.recorder.record(stream_id, rendition,
                                 session_id(target, request.headers, request.peer),
                                 len(body) if request.method == b"GET" else 0)
        return reply

    def _down(self) -> Reply:
        return text_reply(503, f"edge {self.name} is down (fault drill)")

    async def _faulted(self, holds: Holds) -> Reply | None:
        if self.fault == "down":
            return self._down()
        with holds.hold(math.inf) as scope:  # blackhole: answer nothing until restored
            await self.restored.wait()
        return _SHUTTING_DOWN if scope.cancelled_caught else None

    def _timeout_s(self, stream_id: str) -> float:
        target_s = self._target_s.get(stream_id, _DEFAULT_TARGET_S)
        return _HOLD_TARGETS * target_s + _HOLD_MARGIN_S

    async def _fetch(
        self, key: bytes, fetch: _Fetch, stream_id: str, rendition: str, timeout_s: float
    ) -> None:
        try:
            self.stats.upstream_requests += 1
            answer = await self.upstream.fetch(key, timeout_s)
            if answer.failed or answer.status >= 500:
                self.stats.upstream_errors += 1
            fetch.reply = self._store(key, answer, stream_id, rendition)
        except Exception:
            self.stats.upstream_errors += 1
            log.exception("edge %s: fetch of %r failed", self.name, key)
            fetch.reply = text_reply(502, f"edge {self.name}: internal error fetching upstream")
        finally:
            if self._inflight.get(key) is fetch:
                del self._inflight[key]
            if self.fault is None:  # a faulted edge answers its waiters itself
                fetch.deliver()
            fetch.done.set()

    def _store(self, key: bytes, answer: Answer, stream_id: str, rendition: str) -> Reply:
        """The MISS answer for the waiters; the HIT answer cached if the upstream allows."""
        heads = self._heads
        status, content_type, cache_control = (
            answer.status, answer.content_type, answer.cache_control)
        body = answer.body
        if stream_id and status == 200 and rendition and _TARGET_DURATION in body[:512]:
            self._learn_target(stream_id, body)
        ttl_s = None if answer.failed else freshness_s(status, cache_control)
        if ttl_s is not None and status == 200 and rendition and b"?" not in key:
            ttl_s = min(ttl_s, _part_target_s(body))
        if ttl_s is not None:
            hit = Ready(heads.get(status, content_type, cache_control, b"HIT"), body)
            self.cache.put(key, Entry(hit, trio.current_time() + ttl_s, stream_id,
                                      rendition, key))
            path, _, query = key.partition(b"?")
            if status == 200 and rendition and _BLOCKING_QUERY.fullmatch(query):
                plain = Ready(heads.get(status, content_type, _FRESHEST_CACHE_CONTROL, b"HIT"),
                              body)
                self.cache.put(path, Entry(plain, trio.current_time() + 1.0, stream_id,
                                           rendition, path))
        return Ready(heads.get(status, content_type, cache_control, b"MISS"), body)

    def _learn_target(self, stream_id: str, playlist: bytes) -> None:
        start = playlist.find(_TARGET_DURATION) + len(_TARGET_DURATION)
        end = playlist.find(b"\n", start)
        try:
            target_s = float(playlist[start:end if end >= 0 else None].strip())
        except ValueError:
            return
        if 0 < target_s <= 60:
            self._target_s[stream_id] = target_s


class Edge:
    """The running edge, for the service, tests and drills."""

    def __init__(self, name: str, cdn: str, url: str, routes: EdgeRoutes,
                 server: HTTPServer) -> None:
        self.name = name
        self.cdn = cdn
        self.url = url  # the bound base URL
        self.routes = routes
        self.stats = routes.stats
        self._server = server

    @property
    def fault(self) -> Fault:
        return self.routes.fault

    def set_fault(self, fault: Fault) -> None:
        """None (serve), "down" (refuse connections, 503 on open ones) or "blackhole"
        (accept and never answer)."""
        if fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}, not {fault!r}")
        routes = self.routes
        if fault == "blackhole" and routes.restored.is_set():
            routes.restored = trio.Event()
        routes.fault = fault
        server = self._server
        server.refusing = fault == "down"
        if fault == "down":  # as if killed: idle connections closed, held requests end
            server.drop_idle()
            server.holds.drain(trio.current_time())
        elif not server.closing:
            server.holds.drain_deadline = math.inf
        if fault != "blackhole":
            routes.restored.set()
        log.warning("edge %s fault: %s", self.name, fault or "cleared")

    def waiting(self) -> int:
        return self.routes.waiting()

