"""Multi-CDN failover with hls.js in Chromium: the whole platform in-process (gateway,
media, origin, two CDNs of one edge each), ffmpeg publishing, the player started on the
playback URL the API hands out.

(a) CDN a's edge is blackholed (accepts, never answers) while hls.js plays from it. The
    origin's prober marks CDN a down, the steering manifest puts b first, and hls.js
    (content-steering-controller) moves to pathway b within FAILOVER_BOUND_S: its
    fragment requests go to b's edge and the picture never stands still longer than the
    player's target buffer (hls.targetLatency: how far behind the live edge it plays, all
    of it buffered media it can play through while it moves).
(b) The origin admits one direct viewer and every CDN goes down under a player: it falls
    back to the origin pathway within FAILOVER_BOUND_S and plays on, frozen no longer
    than its target buffer; the API's playback URL becomes the origin's, and a second
    player opening it gets hls.js's fatal error with the origin's 503 and its text,
    within REFUSAL_BOUND_S (never a hang).

The probing and steering settings are shortened (probes every 0.2 s within 0.25 s, 2
failures, a 1 s TTL) so a failover fits in the buffer of a low-latency player; the
defaults (1 s, 2, 5 s) trade a slower move for less probe and steering traffic.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from streamscale.config import CdnConfig, EdgeConfig, MediaConfig
from streamscale.services.cdn.edge import Edge
from streamscale.services.media import MediaHub
from streamscale.testing import make_config, running_platform
from streamscale.testing.browser import Browser, Player

from .conftest import Stream, _started, start_publisher, wait_for_master

pytestmark = [pytest.mark.browser, pytest.mark.slow]

log = logging.getLogger(__name__)

FAILOVER_BOUND_S = 5.0  # the fault -> the first fragment from b's edge
REFUSAL_BOUND_S = 10.0  # the refused player's fatal error (hls.js retries a manifest once)
WATCH_S = 8.0  # playback watched after the move
POLL_S = 0.2  # pacing of page readings, not synchronisation
# each player sends its own session id (the origin admits sessions)
CMCD: dict[str, Any] = {"cmcd": {}}
# hls.js keeps a fragment request in flight across a pathway change (the variant index
# stays the same, so nothing aborts it): on a blackholed edge it hangs until
# fragLoadPolicy's time to first byte, 10 s by default, whatever steering says. A
# low-latency player, whose parts are due every 0.33 s (a preload-hinted part's first
# byte comes about one part duration after it is asked for), gives up after 0.75 s.
LL_FRAG_POLICY = {"default": {
    "maxTimeToFirstByteMs": 750, "maxLoadTimeMs": 120000,
    "timeoutRetry": {"maxNumRetry": 4, "retryDelayMs": 0, "maxRetryDelayMs": 0},
    "errorRetry": {"maxNumRetry": 6, "retryDelayMs": 1000, "maxRetryDelayMs": 8000},
}}
PLAYER: dict[str, dict[str, Any]] = {
    "down": CMCD,  # refused connections fail at once: hls.js's defaults
    "blackhole": {**CMCD, "fragLoadPolicy": LL_FRAG_POLICY},
}


async def wait_for_master_unadmitted(url: str, *, timeout_s: float = 30) -> None:
    """`wait_for_master` for an origin with one viewer slot: the test's own polling goes
    in as an edge fetch (x-streamscale-edge), so it takes no slot from the players."""
    headers = {"x-streamscale-edge": "test"}
    async with httpx.AsyncClient(timeout=10, headers=headers) as client:
        with trio.fail_after(timeout_s):
            while True:
                r = await client.get(url)
                uris = [ln for ln in r.text.splitlines() if ln and not ln.startswith("#")]
                if r.status_code == 200 and uris:
                    media = await client.get(httpx.URL(url).join(uris[-1]))
                    if media.status_code == 200 and media.text.count("#EXTINF") >= 2:
                        return
                await trio.sleep(POLL_S)


def cdn_config(*, viewer_limit: int = 50) -> CdnConfig:
    return CdnConfig(
        edges=(EdgeConfig(name="a1", cdn="a"), EdgeConfig(name="b1", cdn="b")),
        health_interval_s=0.2, health_timeout_s=0.25, health_failures=2, steering_ttl_s=1,
        origin_viewer_limit=viewer_limit, origin_session_idle_s=5.0)


@dataclasses.dataclass
class Cdns:
    stream: Stream
    edges: dict[str, Edge]

    async def playback_url(self) -> str:
        base = self.stream.platform.api_url
        async with httpx.AsyncClient(timeout=10) as api:
            r = await api.get(f"{base}/streams/{self.stream.stream_id}")
        r.raise_for_status()
        url: str = r.json()["playback_url"]
        return url


async def _cdns(tmp_path: Path, cdn: CdnConfig) -> AsyncIterator[Cdns]:
    config = make_config(tmp_path, cdn=cdn)
    config = dataclasses.replace(config, media=MediaConfig(
        rtmp_port=0, reconnect_grace_s=1.0, ladder="source,160p",
        shed_sustain_s=3600.0, restore_after_s=3600.0))
    services = ("gateway", "media", "origin", "edge")
    async with running_platform(config, services) as platform:
        hub = platform.handle("media", "hub")
        edges = platform.handle("edge", "edges")
        assert isinstance(hub, MediaHub) and isinstance(edges, dict)
        yield Cdns(await _started(platform, hub), edges)


@pytest.fixture
async def cdns(tmp_path: Path) -> AsyncIterator[Cdns]:
    async for running in _cdns(tmp_path, cdn_config()):
        yield running


@pytest.fixture
async def one_slot(tmp_path: Path) -> AsyncIterator[Cdns]:
    async for running in _cdns(tmp_path, cdn_config(viewer_limit=1)):
        yield running


async def delivery(player: Player) -> dict[str, Any]:
    reading: dict[str, Any] = await player.evaluate("probe.delivery()")
    return reading


async def until(player: Player, check: Any, *, timeout_s: float, what: str) -> dict[str, Any]:
    """Read the page every POLL_S until `check(reading)`; fail with the last reading."""
    reading: dict[str, Any] = {}
    try:
        with trio.fail_after(timeout_s):
            while True:
                reading = await delivery(player)
                if check(reading):
                    return reading
                await trio.sleep(POLL_S)
    except trio.TooSlowError:
        raise AssertionError(f"{what}: not within {timeout_s} s; page: {reading}") from None


def playing(reading: dict[str, Any]) -> bool:
    return bool(reading["currentTime"] > 0.5 and reading["frags"])


def no_fatal(reading: dict[str, Any]) -> bool:
    assert reading["fatal"] is None, reading
    return True


@pytest.mark.parametrize("fault", ["down", "blackhole"])
async def test_hls_js_moves_to_the_other_cdn(fault: str, cdns: Cdns, browser: Browser) -> None:
    a1, b1 = cdns.edges["a1"].url, cdns.edges["b1"].url
    async with trio.open_nursery() as nursery:
        publisher = await start_publisher(nursery, cdns.stream.publish_url, 120)
        await wait_for_master(cdns.stream.master_url, rungs=2)
        url = await cdns.playback_url()
        assert url == f"{a1}/live/{cdns.stream.stream_id}/master.m3u8"  # CDN a first
        player = await browser.open_player(url, config=PLAYER[fault])
        await until(player, lambda r: no_fatal(r) and playing(r) and r["steeringLoads"] > 0,
                    timeout_s=60, what="playing from CDN a")
        before = await until(player, lambda r: r["frags"][-1][1].startswith(a1),
                             timeout_s=10, what="fragments from a's edge")
        assert before["pathway"] == "a" and before["priority"] == ["a", "b", "origin"]
        target_buffer_s = before["targetLatency"]
        assert target_buffer_s is not None

        await player.evaluate("probe.resetFreeze()")
        fault_ms = (await delivery(player))["now"]
        cdns.edges["a1"].set_fault(fault)  # type: ignore[arg-type]
        moved = await until(
            player, lambda r: no_fatal(r) and any(
                at >= fault_ms and u.startswith(b1) for at, u in r["frags"]),
            timeout_s=FAILOVER_BOUND_S + 10, what="fragments from b's edge")
        first_b_ms = min(at for at, u in moved["frags"] if at >= fault_ms and u.startswith(b1))
        failover_s = (first_b_ms - fault_ms) / 1000
        log.warning("%s a -> b: first fragment from b %.2f s after the fault", fault,
                    failover_s)
        assert failover_s <= FAILOVER_BOUND_S, _show(moved, fault_ms)

        # keep watching: playback goes on from b, no freeze past the target buffer
        start_time = moved["currentTime"]
        after = moved
        for _ in range(int(WATCH_S / POLL_S)):
            await trio.sleep(POLL_S)
            after = await delivery(player)
            assert after["fatal"] is None, _show(after, fault_ms)
        assert after["pathway"] == "b" and after["priority"][0] == "b", _show(after, fault_ms)
        assert after["currentTime"] > start_time + WATCH_S / 2, _show(after, fault_ms)
        recent = [u for at, u in after["frags"] if at > first_b_ms]
        assert recent and all(u.startswith(b1) for u in recent), _show(after, fault_ms)
        freeze_s = after["maxFreezeMs"] / 1000
        log.warning("%s: longest freeze %.2f s (target buffer %.2f s)", fault, freeze_s,
                    target_buffer_s)
        assert freeze_s <= target_buffer_s, _show(after, fault_ms)
        publisher.terminate()


def _show(reading: dict[str, Any], fault_ms: float) -> str:
    """A page reading with times relative to the fault (s), for failure messages."""
    def rel(rows: list[list[Any]]) -> list[str]:
        return [f"{(at - fault_ms) / 1000:+.2f} {url.split('?')[0]}" for at, url in rows]
    return "\n".join([
        f"pathway {reading['pathway']} priority {reading['priority']} "
        f"steering loads {reading['steeringLoads']} freeze {reading['maxFreezeMs']} ms "
        f"target latency {reading['targetLatency']} currentTime {reading['currentTime']}",
        "fragments:", *rel(reading["frags"]), "playlists:", *rel(reading["playlists"]),
        f"errors: {reading['errors']}"])


async def test_with_every_cdn_down_players_fall_back_to_the_origin_up_to_its_limit(
    one_slot: Cdns, browser: Browser
) -> None:
    stream = one_slot.stream
    a1 = one_slot.edges["a1"].url
    origin = stream.master_url.split("/live/")[0]
    async with trio.open_nursery() as nursery:
        publisher = await start_publisher(nursery, stream.publish_url, 120)
        await wait_for_master_unadmitted(stream.master_url)
        url = await one_slot.playback_url()
        assert url.startswith(a1)
        first = await browser.open_player(url, config=CMCD)
        before = await until(
            first, lambda r: no_fatal(r) and playing(r) and r["steeringLoads"] > 0
            and r["frags"][-1][1].startswith(a1), timeout_s=60, what="playing from CDN a")
        target_buffer_s = before["targetLatency"]

        await first.evaluate("probe.resetFreeze()")
        fault_ms = (await delivery(first))["now"]
        for edge in one_slot.edges.values():
            edge.set_fault("down")
        fell_back = await until(
            first, lambda r: no_fatal(r) and any(
                at >= fault_ms and u.startswith(origin) for at, u in r["frags"]),
            timeout_s=FAILOVER_BOUND_S + 10, what="fragments from the origin")
        fallback_s = (min(at for at, u in fell_back["frags"]
                          if at >= fault_ms and u.startswith(origin)) - fault_ms) / 1000
        log.warning("every CDN down: first fragment from the origin %.2f s after", fallback_s)
        assert fallback_s <= FAILOVER_BOUND_S, _show(fell_back, fault_ms)

        with trio.fail_after(10):  # the gateway's prober sees both CDNs down
            while True:
                url = await one_slot.playback_url()
                if url == stream.master_url:
                    break
                await trio.sleep(POLL_S)
        opened_ms = (await delivery(first))["now"]
        second = await browser.open_player(url, config=CMCD)
        refused = await until(second, lambda r: r["fatal"] is not None,
                              timeout_s=REFUSAL_BOUND_S, what="the second player's error")
        error = next(e for e in refused["errors"] if e["fatal"])
        assert error["code"] == 503, refused
        assert "origin at capacity: 1 direct viewers" in error["text"], refused
        log.warning("refused player: %s %s %r, %.2f s after it opened", error["details"],
                    error["code"], error["text"], (error["at"] - opened_ms) / 1000)

        # the admitted player plays on from the origin, the freeze within its buffer
        later = await until(first, lambda r: no_fatal(r)
                            and r["currentTime"] > fell_back["currentTime"] + 5,
                            timeout_s=20, what="the first player going on")
        assert later["pathway"] == "origin" and later["priority"][0] == "origin", (
            _show(later, fault_ms))
        recent = [u for at, u in later["frags"] if at > opened_ms]
        assert recent and all(u.startswith(origin) for u in recent), _show(later, fault_ms)
        log.warning("every CDN down: longest freeze %.2f s (target buffer %.2f s)",
                    later["maxFreezeMs"] / 1000, target_buffer_s)
        assert later["maxFreezeMs"] / 1000 <= target_buffer_s, _show(later, fault_ms)
        publisher.terminate()
