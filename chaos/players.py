"""HTTP players for drills: each polls one rendition's LL-HLS playlist through a CDN
pathway and fetches every new part, as a player does; on an error or a stall it fails
over to the next pathway (hls.js does the same with content steering's pathway list
after repeated errors). Every fetch is recorded, so probes can say whether viewers kept
getting media and how many requests failed in a window.

A stand-in for hls.js in Chromium (`streamscale.testing.browser`), which the drills can
use too: this one costs a task, not a browser, so a drill can run tens of them.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from dataclasses import dataclass, field

import httpx
import trio

log = logging.getLogger(__name__)

_PART_URI = re.compile(r'#EXT-X-PART:[^\n]*URI="([^"]+)"')
_SEGMENT_URI = re.compile(r"^(?!#)(\S+)$", re.M)


@dataclass(frozen=True)
class Fetch:
    at_s: float
    player: int
    pathway: str
    kind: str  # "playlist" or "part"
    ok: bool


@dataclass
class PlayerPool:
    """`count` players of `stream_id`'s `rendition` over `pathways` (name -> base URL)."""

    pathways: dict[str, str]
    stream_id: str
    count: int
    rendition: str = "160p"
    poll_s: float = 0.25
    timeout_s: float = 2.0
    fetches: deque[Fetch] = field(default_factory=lambda: deque(maxlen=100_000))
    current: list[str] = field(default_factory=list)  # each player's pathway
    failovers: int = 0
    _client: httpx.AsyncClient | None = None
    _nursery: trio.Nursery | None = None

    def __post_init__(self) -> None:
        if not self.pathways:
            raise ValueError("players need at least one pathway")
        if self.count < 1:
            raise ValueError("count must be >= 1")
        self.current = [next(iter(self.pathways))] * self.count

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        async with httpx.AsyncClient(timeout=self.timeout_s) as client, \
                trio.open_nursery() as nursery:
            self._client, self._nursery = client, nursery
            for index in range(self.count):
                nursery.start_soon(self._play, client, index)
            task_status.started()

    def grow(self, extra: int) -> None:
        """`extra` more players join at once (a surge), on the first pathway."""
        if self._client is None or self._nursery is None:
            raise RuntimeError("the pool is not running")
        first = next(iter(self.pathways))
        for index in range(self.count, self.count + extra):
            self.current.append(first)
            self._nursery.start_soon(self._play, self._client, index)
        self.count += extra

    def share_with_parts(self, window_s: float) -> float:
        """The share of all players that got a part in the last `window_s`."""
        return self.players_with_parts(window_s) / self.count

    def window(self, window_s: float) -> list[Fetch]:
        since = trio.current_time() - window_s
        return [f for f in self.fetches if f.at_s >= since]

    def error_rate(self, window_s: float) -> float:
        recent = self.window(window_s)
        return sum(not f.ok for f in recent) / len(recent) if recent else 1.0

    def players_with_parts(self, window_s: float) -> int:
        return len({f.player for f in self.window(window_s) if f.kind == "part" and f.ok})

    def _record(self, index: int, pathway: str, kind: str, ok: bool) -> None:
        self.fetches.append(Fetch(trio.current_time(), index, pathway, kind, ok))

    def _fail_over(self, index: int) -> None:
        names = list(self.pathways)
        self.current[index] = names[(names.index(self.current[index]) + 1) % len(names)]
        self.failovers += 1
        log.info("player %d fails over to pathway %s", index, self.current[index])

    async def _play(self, client: httpx.AsyncClient, index: int) -> None:
        seen: set[str] = set()
        while True:
            pathway = self.current[index]
            base = f"{self.pathways[pathway]}/live/{self.stream_id}/{self.rendition}"
            ok = await self._poll(client, index, pathway, base, seen)
            if not ok:
                self._fail_over(index)
            await trio.sleep(self.poll_s)  # pacing between polls (a player's reload timer)

    async def _poll(self, client: httpx.AsyncClient, index: int, pathway: str, base: str,
                    seen: set[str]) -> bool:
        playlist = await self._fetch(client, index, pathway, f"{base}/index.m3u8", "playlist")
        if playlist is None:
            return False
        uris = _PART_URI.findall(playlist.text) or _SEGMENT_URI.findall(playlist.text)
        for uri in uris[-3:]:  # the live edge: what a low-latency player fetches next
            if uri in seen:
                continue
            if await self._fetch(client, index, pathway, f"{base}/{uri}", "part") is None:
                return False
            seen.add(uri)
        return True

    async def _fetch(self, client: httpx.AsyncClient, index: int, pathway: str, url: str,
                     kind: str) -> httpx.Response | None:
        """GET within the player's timeout, recorded; the answer if it was a 200."""
        try:
            with trio.fail_after(self.timeout_s):
                response = await client.get(url)
        except (httpx.HTTPError, trio.TooSlowError):
            self._record(index, pathway, kind, False)
            return None
        ok = response.status_code == 200
        self._record(index, pathway, kind, ok)
        return response if ok else None
