"""Real players for drills: hls.js in Debian's Chromium (Playwright), beside the HTTP
players of `chaos.players`.

Each player is a page of its own (Playwright's `Browser.new_page` gives every page its
own context: no shared cache, cookies or connections) in one headless Chromium, opening
`web/player_probe.html` on the stream's playback URL, the master the API hands out, with
content steering: hls.js picks its pathway from the steering manifest and from its own
errors, as a viewer's player does. A sampler reads every page once a second
(`probe.delivery()`): currentTime, the CDN of the fragments it fetched (from their URLs),
hls.js's pathway, live latency (hls.js `latency`, and Date.now() minus the
PROGRAM-DATE-TIME of the playing position), errors. A script added to each page counts
stalls every 100 ms (the picture's currentTime not moving after playback started), so
stall seconds do not depend on the sampling.

The hls.js configuration is the viewer's default plus a short time to first byte for
fragments (0.75 s; `LL_FRAG_POLICY`, as tests/browser/test_cdn_failover.py found): hls.js
keeps a fragment request in flight across a pathway change, and on a blackholed CDN it
would hang for the default 10 s whatever steering says. Blocking playlist reloads need no
such setting: hls.js caps their time to first byte at max(3 parts, 0.8 target duration)
by itself (0.8 s with the drill's 0.25 s parts and 1 s segments).

Chromium costs far more than a task: a drill runs a few of these beside tens of HTTP
players. Needs the `dev` extra (playwright) and Chromium (`./dev test` installs it).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
import trio

log = logging.getLogger(__name__)

LL_FRAG_POLICY: dict[str, Any] = {"default": {
    "maxTimeToFirstByteMs": 750, "maxLoadTimeMs": 120000,
    "timeoutRetry": {"maxNumRetry": 4, "retryDelayMs": 0, "maxRetryDelayMs": 0},
    "errorRetry": {"maxNumRetry": 6, "retryDelayMs": 1000, "maxRetryDelayMs": 8000},
}}
# every player sends its own CMCD session id (the origin admits direct viewers by it)
HLS_CONFIG: dict[str, Any] = {"cmcd": {}, "fragLoadPolicy": LL_FRAG_POLICY}
INSTALL_HINT = ("./dev test installs it (apt-get install chromium; the dev extra has "
                "playwright), or set STREAMSCALE_CHROMIUM; --no-browser runs the drill "
                "with HTTP players only")
READ_S = 0.25  # pacing of page readings while waiting for a failover

# Added to each page once it has loaded: stall time at 100 ms resolution, counted from the
# first "playing" event (startup is not a stall), by the page's own clock.
_STALL_JS = """(() => {
  if (window.__drill) return;
  const video = document.getElementById("video");
  const d = window.__drill = { stallMs: 0, last: -1, tick: Date.now() };
  setInterval(() => {
    const now = Date.now();
    if (video.currentTime !== d.last) d.last = video.currentTime;
    else if ("playing" in probe.marks && !video.ended) d.stallMs += now - d.tick;
    d.tick = now;
  }, 100);
})()"""
_READ_JS = """(() => {
  const d = probe.delivery();
  const playing = hls.playingDate;
  d.stallMs = window.__drill ? window.__drill.stallMs : 0;
  d.played = "playing" in probe.marks;
  d.pdtLatency = playing ? (Date.now() - playing.getTime()) / 1000 : null;
  d.errorCount = probe.errors.length;
  return d;
})()"""


def unavailable() -> str | None:
    """Why hls.js players cannot run here (None if they can)."""
    from streamscale.testing.browser import CHROMIUM

    if importlib.util.find_spec("playwright") is None:
        return f"playwright is not installed; {INSTALL_HINT}"
    if not os.path.exists(CHROMIUM):
        return f"no Chromium at {CHROMIUM}; {INSTALL_HINT}"
    return None


@dataclass(frozen=True, kw_only=True)
class Reading:
    """One player's page, read once (epoch seconds by the page's clock)."""

    at_s: float
    player: int
    current_time_s: float
    played: bool  # playback started (the first "playing" event)
    cdn: str | None  # where its newest fragment came from ("a", "b", "origin"; None: none yet)
    pathway: str | None  # hls.js's current pathway (its steering view)
    latency_s: float | None  # hls.latency: behind the live edge
    pdt_latency_s: float | None
    stall_s: float  # total since playback started
    errors: int
    fatal: str | None


@dataclass(frozen=True, kw_only=True)
class Failover:
    """One player's move off a faulted CDN: from the fault to its first fragment from
    `pathway` (None: not within the wait)."""

    player: int
    pathway: str
    steered_s: float | None  # the fault to the first reading of hls.js on `pathway`
    failover_s: float | None
    stall_s: float  # stall seconds from the fault to the end of the wait


@dataclass
class BrowserPlayerPool:
    """`count` hls.js players of `url` (a playback master); `cdns` maps a pathway name to
    the base URL players reach it at, to tell from a fragment's URL where it came from."""

    url: str
    cdns: dict[str, str]
    count: int
    config: dict[str, Any] = field(default_factory=lambda: dict(HLS_CONFIG))
    sample_s: float = 1.0
    readings: list[Reading] = field(default_factory=list)
    frags: list[dict[tuple[float, str], None]] = field(default_factory=list)  # ordered sets
    failovers: list[Failover] = field(default_factory=list)
    fault_at_s: float | None = None  # epoch s of the fault the last wait measured from
    steering_moved_s: float | None = None  # the fault -> the steering manifest moved
    steering_url: str | None = None
    _read: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("count must be >= 1")

    async def run(self, *, join_s: float = 60.0,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Chromium with `count` pages playing; started once every one plays (or raises
        within `join_s` with what the page says); then reads them every `sample_s`."""
        from streamscale.testing.browser import open_browser

        self.steering_url = await _steering_url(self.url)
        async with open_browser() as browser:
            for _ in range(self.count):
                player = await browser.open_player(self.url, config=self.config)
                await player.evaluate(_STALL_JS)
                self._read.append(partial(player.evaluate, _READ_JS))
                self.frags.append({})
            await self._joined(join_s)
            task_status.started()
            while True:
                await self.read_all()
                await trio.sleep(self.sample_s)  # the sampling period

    async def _joined(self, join_s: float) -> None:
        with trio.move_on_after(join_s):
            while True:
                latest = await self.read_all()
                if any(r.fatal for r in latest):
                    break
                if all(r.played and r.current_time_s > 0.5 for r in latest):
                    return
                await trio.sleep(READ_S)  # pacing of page readings
        raise RuntimeError(f"hls.js players not all playing within {join_s} s: "
                           f"{self.latest()}")

    async def read_all(self) -> list[Reading]:
        """Read every page now; each reading is kept."""
        out = []
        for index, read in enumerate(self._read):
            page = await read()
            seen = self.frags[index]
            for at_ms, url in page["frags"]:
                seen[(at_ms / 1000, url)] = None
            newest = page["frags"][-1][1] if page["frags"] else None
            out.append(Reading(
                at_s=page["now"] / 1000, player=index, current_time_s=page["currentTime"],
                played=page["played"], cdn=self.cdn_of(newest) if newest else None,
                pathway=page["pathway"], latency_s=page["latency"],
                pdt_latency_s=page["pdtLatency"], stall_s=page["stallMs"] / 1000,
                errors=page["errorCount"], fatal=page["fatal"]))
        self.readings.extend(out)
        return out

    def cdn_of(self, url: str) -> str:
        for name, base in self.cdns.items():
            if url.startswith(base):
                return name
        return url.split("/live/")[0]  # unknown: its host, as is

    def latest(self) -> list[Reading]:
        last: dict[int, Reading] = {}
        for r in self.readings:
            last[r.player] = r
        return [last[i] for i in sorted(last)]

    def playing(self, window_s: float) -> int:
        """Players whose currentTime advanced within the last `window_s` (read now), with
        no fatal error."""
        latest = self.latest()
        count = 0
        for now in latest:
            earlier = [r for r in self.readings if r.player == now.player
                       and r.at_s <= now.at_s - window_s]
            since = earlier[-1] if earlier else next(
                r for r in self.readings if r.player == now.player)
            count += now.fatal is None and now.current_time_s > since.current_time_s
        return count

    def on(self, pathway: str) -> int:
        """Players whose newest fragment came from `pathway`."""
        return sum(r.cdn == pathway for r in self.latest())

    def worst_stall_s(self) -> float:
        return max((r.stall_s for r in self.latest()), default=0.0)

    async def _steered_safe(self) -> str | None:
        try:
            return await self.steered()
        except (httpx.HTTPError, ValueError, KeyError):
            return None

    async def steered(self) -> str | None:
        """The pathway the platform's steering puts first now (None: not steered)."""
        if self.steering_url is None:
            return None
        async with httpx.AsyncClient(timeout=5) as client:
            r = await client.get(self.steering_url)
        r.raise_for_status()
        priority: list[str] = r.json()["PATHWAY-PRIORITY"]
        return priority[0]

    async def wait_all_on(self, pathway: str, within_s: float) -> list[Failover]:
        """From now (the fault: the caller has just set it), read the pages until every
        player has fetched a fragment from `pathway` and its newest one is from there, or
        `within_s` passes; each player's failover time from its fragments' timestamps.
        Meanwhile the steering manifest is read too: when the platform put `pathway`
        first (`steering_moved_s`, seen by polling: up to one read cycle, ~0.25-0.5 s,
        late) splits a failover into the platform's detection and the player's reaction."""
        fault_s = self.fault_at_s = time.time()
        self.steering_moved_s = None
        stall_at_fault = {r.player: r.stall_s for r in await self.read_all()}
        with trio.move_on_after(within_s):
            while True:
                if self.steering_moved_s is None and await self._steered_safe() == pathway:
                    self.steering_moved_s = round(time.time() - fault_s, 2)
                if all(r.cdn == pathway for r in await self.read_all()):
                    break
                await trio.sleep(READ_S)  # polls the pages as the players move
        latest = await self.read_all()
        self.failovers = []
        for r in latest:
            firsts = [at for at, url in self.frags[r.player]
                      if at >= fault_s and self.cdn_of(url) == pathway]
            steered = [x.at_s for x in self.readings if x.player == r.player
                       and x.at_s >= fault_s and x.pathway == pathway]
            self.failovers.append(Failover(
                player=r.player, pathway=pathway,
                steered_s=round(min(steered) - fault_s, 2) if steered else None,
                failover_s=round(min(firsts) - fault_s, 3) if firsts else None,
                stall_s=round(r.stall_s - stall_at_fault[r.player], 2)))
        return self.failovers

    def timeline(self, start_s: float) -> dict[str, Any]:
        """Per whole second since `start_s` (epoch): how many players' newest fragment
        came from each CDN, how many stalled in that second, the mean latency; and each
        player's failover (for the journal and the plot)."""
        readings = sorted(self.readings, key=lambda r: r.at_s)
        series: dict[str, list[list[float]]] = {}
        cdns = sorted({r.cdn for r in readings if r.cdn})
        state: dict[int, Reading] = {}  # each player's newest reading by the second's end
        at = 0
        for second in (range(int(readings[0].at_s - start_s), int(readings[-1].at_s - start_s)
                             + 1) if readings else ()):
            before = dict(state)
            while at < len(readings) and readings[at].at_s < start_s + second + 1:
                state[readings[at].player] = readings[at]
                at += 1
            players = state.values()
            for cdn in cdns:
                series.setdefault(f"hls.js on {cdn}", []).append(
                    [second, sum(r.cdn == cdn for r in players)])
            series.setdefault("hls.js stalled", []).append([second, sum(
                r.player in before and r.stall_s > before[r.player].stall_s + 0.05
                for r in players)])
            series.setdefault("hls.js errors", []).append([second, sum(
                r.errors - before[r.player].errors for r in players if r.player in before)])
            latencies = [r.latency_s for r in players if r.latency_s is not None]
            if latencies:
                series.setdefault("hls.js latency s", []).append(
                    [second, round(sum(latencies) / len(latencies), 2)])
        out: dict[str, Any] = {
            "unit": "hls.js players per second since the drill started, as last read by "
                    "the second's end (newest fragment's CDN; stalled: currentTime stood "
                    "still some of that second; errors: hls.js error events that second)",
            "players": self.count, "series": series,
            "stall_s": [r.stall_s for r in self.latest()],
            "readings": {  # every reading of each player, as read
                "columns": ["s", "currentTime", "cdn", "pathway", "latency_s",
                            "pdt_latency_s", "stall_s", "errors", "fatal"],
                "players": [[[round(r.at_s - start_s, 2), round(r.current_time_s, 2), r.cdn,
                              r.pathway, _round(r.latency_s), _round(r.pdt_latency_s),
                              round(r.stall_s, 2), r.errors,
                              r.fatal] for r in readings if r.player == index]
                            for index in range(self.count)]},
            "failovers": [vars(f) for f in self.failovers],
        }
        if self.fault_at_s is not None:
            out["fault_s"] = round(self.fault_at_s - start_s, 2)
            out["steering_moved_s"] = self.steering_moved_s
        return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


async def _steering_url(master_url: str) -> str | None:
    """The steering manifest's URI from the master (EXT-X-CONTENT-STEERING)."""
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.get(master_url)
    r.raise_for_status()
    for line in r.text.splitlines():
        if line.startswith("#EXT-X-CONTENT-STEERING:"):
            for attribute in line.split(":", 1)[1].split(","):
                name, _, value = attribute.partition("=")
                if name == "SERVER-URI":
                    return value.strip('"')
    return None
