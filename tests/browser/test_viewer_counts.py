"""Viewer counts with real players: hls.js in Chromium plays a live stream through an edge
and `GET /api/streams/{id}` counts each player once, then 0 after they close.

Players with CMCD on (`cmcd: {}`: hls.js sends a random session id with every request)
count one each, whichever pathway content steering sends them to. Players without it are
told apart by address and user agent only: here every page shares both, so they count
as one viewer together (the fallback's known limit, asserted so it stays documented).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from streamscale.config import CdnConfig, EdgeConfig, MediaConfig
from streamscale.services.media import MediaHub
from streamscale.testing import make_config, running_platform
from streamscale.testing.browser import Browser, Player

from .conftest import Stream, _started, start_publisher

pytestmark = [pytest.mark.browser, pytest.mark.slow]

POLL_S = 0.2  # pacing of readings of other tasks' progress, not synchronisation
CMCD_PLAYERS, PLAIN_PLAYERS = 2, 2


@pytest.fixture
async def stream(tmp_path: Path) -> AsyncIterator[Stream]:
    config = make_config(tmp_path, cdn=CdnConfig(
        edges=(EdgeConfig(name="a1", cdn="a"), EdgeConfig(name="b1", cdn="b")),
        records_flush_s=0.25, viewer_idle_s=3.0, viewer_sample_s=0.25))
    config = dataclasses.replace(config, media=MediaConfig(
        rtmp_port=0, reconnect_grace_s=1.0, ladder="source,160p",
        shed_sustain_s=3600.0, restore_after_s=3600.0))
    services = ("gateway", "media", "origin", "edge", "analytics")
    async with running_platform(config, services) as platform:
        hub = platform.handle("media", "hub")
        assert isinstance(hub, MediaHub)
        yield await _started(platform, hub)


async def _stream_body(stream: Stream) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as api:
        r = await api.get(f"{stream.platform.api_url}/streams/{stream.stream_id}")
    r.raise_for_status()
    body: dict[str, Any] = r.json()
    return body


async def _until_count(stream: Stream, viewers: int, *, timeout_s: float) -> dict[str, Any]:
    body: dict[str, Any] = {}
    try:
        with trio.fail_after(timeout_s):
            while True:
                body = await _stream_body(stream)
                if body["viewer_count"] == viewers:
                    break
                await trio.sleep(POLL_S)
    except trio.TooSlowError:
        raise AssertionError(f"viewer_count never {viewers}: {body}") from None
    return body


async def _wait_for_media(master_url: str, *, timeout_s: float = 30) -> None:
    """Poll the origin until the last variant has two segments. As an edge fetch
    (x-streamscale-edge): a plain poll would be a direct viewer, and counted."""
    async with httpx.AsyncClient(timeout=10,
                                 headers={"x-streamscale-edge": "test"}) as client:
        with trio.fail_after(timeout_s):
            while True:
                r = await client.get(master_url)
                uris = [ln for ln in r.text.splitlines() if ln and not ln.startswith("#")]
                if r.status_code == 200 and uris:
                    media = await client.get(httpx.URL(master_url).join(uris[-1]))
                    if media.status_code == 200 and media.text.count("#EXTINF") >= 2:
                        return
                await trio.sleep(POLL_S)


async def _until_playing(player: Player, *, timeout_s: float) -> None:
    with trio.fail_after(timeout_s):
        while True:
            state = await player.state()
            assert state.fatal is None, state.errors
            if state.current_time_s > 0.5 and state.presented > 0:
                return
            await trio.sleep(POLL_S)


async def test_hls_js_players_through_an_edge_are_counted(
    stream: Stream, browser: Browser
) -> None:
    edges = stream.platform.handle("edge", "edges")
    assert isinstance(edges, dict)
    master = f"{edges['a1'].url}/live/{stream.stream_id}/master.m3u8"
    async with trio.open_nursery() as nursery:
        publisher = await start_publisher(nursery, stream.publish_url, 120)
        await _wait_for_media(stream.master_url)
        players = [await browser.open_player(master, config={"cmcd": {}})
                   for _ in range(CMCD_PLAYERS)]
        players += [await browser.open_player(master) for _ in range(PLAIN_PLAYERS)]
        for player in players:
            await _until_playing(player, timeout_s=60)
        counted = CMCD_PLAYERS + 1  # the plain players share one address and user agent
        body = await _until_count(stream, counted, timeout_s=30)
        assert body["unique_viewers"] == counted
        assert sum(body["viewers_by_rendition"].values()) == counted
        assert set(body["viewers_by_rendition"]) <= {"source", "160p"}
        for player in players:
            await player.close()
        body = await _until_count(stream, 0, timeout_s=30)
        assert (body["peak_viewers"], body["unique_viewers"]) == (counted, counted)
        assert body["viewers_by_rendition"] == {}
        publisher.terminate()
