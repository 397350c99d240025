"""An HTTP-aware fault proxy in front of the origin or an edge.

It serves GET/HEAD with the platform's lean listener and forwards each request upstream
(httpx), unless a fault applies:

- `error_share` of requests, or every request whose path matches `error_path`, gets
  `error_status` (a 5xx);
- `stuck_playlists`: media playlists (`*.m3u8` other than master) are answered with the
  version seen when the fault was set, so a player sees a live stream that stops moving;
- `late_s`: part and segment answers (`.m4s`, `.mp4`, `.ts`) are delayed;
- `missing_share` of parts and segments (or those matching `missing_path`) get 404.

`clear()` is the rollback. Figures in `stats` say what was done.
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import dataclass, field
from functools import partial

import httpx
import trio

from streamscale.services.lean_http import CORS, Head, Holds, HTTPServer, Limits, Reply, Request

log = logging.getLogger(__name__)

_MEDIA = re.compile(r"\.(m4s|mp4|ts|aac)$")
_PLAYLIST = re.compile(r"\.m3u8$")
_KEEP_HEADERS = ("content-type", "cache-control", "x-cache")


@dataclass
class HttpFaultStats:
    requests: int = 0
    errors: int = 0
    stale_playlists: int = 0
    late: int = 0
    missing: int = 0
    upstream_failures: int = 0


@dataclass
class HttpFaultProxy:
    upstream: str  # base URL, e.g. http://127.0.0.1:8081
    error_share: float = 0.0
    error_path: str = ""  # a regex searched in the path
    error_status: int = 503
    late_s: float = 0.0
    missing_share: float = 0.0
    missing_path: str = ""
    seed: int = 0
    stats: HttpFaultStats = field(default_factory=HttpFaultStats)
    port: int = 0
    _stuck: bool = False
    _frozen: dict[str, tuple[Head, bytes]] = field(default_factory=dict)
    _rng: random.Random = field(init=False)
    _client: httpx.AsyncClient | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self.check()

    def check(self) -> None:
        if not 0 <= self.error_share <= 1 or not 0 <= self.missing_share <= 1:
            raise ValueError("error_share and missing_share are shares in [0, 1]")
        if not 500 <= self.error_status <= 599:
            raise ValueError(f"error_status must be a 5xx, not {self.error_status}")
        if self.late_s < 0:
            raise ValueError("late_s must be >= 0")
        re.compile(self.error_path)
        re.compile(self.missing_path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stick_playlists(self, on: bool = True) -> None:
        """Freeze every media playlist at the next version served (or release them)."""
        self._stuck = on
        self._frozen.clear()

    def clear(self) -> None:
        self.error_share = self.missing_share = self.late_s = 0.0
        self.error_path = self.missing_path = ""
        self.stick_playlists(False)

    async def serve(
        self, *, host: str = "127.0.0.1", port: int = 0, shutdown: trio.Event | None = None,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        server = HTTPServer(self._handle, Limits(response_timeout_s=30.0), name="http-faults")
        async with httpx.AsyncClient(base_url=self.upstream, timeout=20.0) as client:
            self._client = client

            async with trio.open_nursery() as nursery:
                listeners = await nursery.start(partial(
                    server.serve, host=host, port=port, shutdown=shutdown or trio.Event()))
                self.port = int(listeners[0].socket.getsockname()[1])
                log.info("http fault proxy %s -> %s", self.url, self.upstream)
                task_status.started(self.port)

    async def _handle(self, request: Request, holds: Holds) -> Reply:
        self.check()
        self.stats.requests += 1
        target = request.target.decode("latin-1")
        path = target.split("?", 1)[0]
        if (self.error_path and re.search(self.error_path, path)) or (
                self.error_share and self._rng.random() < self.error_share):
            self.stats.errors += 1
            return _text(self.error_status, "injected fault")
        is_media = bool(_MEDIA.search(path))
        if is_media and ((self.missing_path and re.search(self.missing_path, path)) or (
                self.missing_share and self._rng.random() < self.missing_share)):
            self.stats.missing += 1
            return _text(404, "injected: missing part")
        stuck = self._stuck and _PLAYLIST.search(path) and not path.endswith("master.m3u8")
        if stuck and path in self._frozen:
            self.stats.stale_playlists += 1
            return self._frozen[path]
        if is_media and self.late_s:
            self.stats.late += 1
            await trio.sleep(self.late_s)
        reply = await self._forward(request, target)
        if stuck and reply[0].status == 200:
            self._frozen[path] = reply
        return reply

    async def _forward(self, request: Request, target: str) -> tuple[Head, bytes]:
        assert self._client is not None, "serve() first"
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.headers
                   if k in (b"range", b"user-agent", b"accept")}
        try:
            response = await self._client.request(request.method.decode(), target,
                                                  headers=headers)
        except httpx.HTTPError as exc:
            self.stats.upstream_failures += 1
            return _text(502, f"upstream: {exc.__class__.__name__}")
        kept = [(name.encode(), response.headers[name].encode())
                for name in _KEEP_HEADERS if name in response.headers]
        return Head(response.status_code, [*kept, CORS]), response.content


def _text(status: int, message: str) -> tuple[Head, bytes]:
    return Head(status, [(b"content-type", b"text/plain"), (b"cache-control", b"no-store"),
                         CORS]), message.encode()

