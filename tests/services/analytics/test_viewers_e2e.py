"""Viewer counts end to end: `GET /api/streams/{id}` and the stream list show N viewers
while N sessions watch, and 0 once they stop.

1. gateway + analytics on a Redis bus, the records sent by `UsageRecorder`s in this test
   process (as edges in other processes would) through their own `RedisBus`.
2. (slow) ffmpeg publishes; HTTP clients with distinct CMCD session ids fetch the master,
   a rendition's playlist and its segments through the real edges (some through both
   CDNs) or from the origin directly; the analytics service counts the edges' and the
   origin's records, and the edges' own fetches from the origin are not viewers.

The API is polled (another service's progress, read over HTTP) with deadlines.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import m3u8
import pytest
import trio

from streamscale.backends.bus import open_bus
from streamscale.backends.storage import open_store
from streamscale.config import CdnConfig, Config, EdgeConfig, MediaConfig
from streamscale.services.cdn.records import RECORDS_QUEUE, UsageBatch, UsageRecorder
from streamscale.testing import make_config, running_platform
from streamscale.testing.redis_keys import redis_key_prefix

from ..media.test_media_e2e import Live, _publish_live, _start

REDIS = "redis://127.0.0.1:6379/0"
CDN = CdnConfig(
    edges=(EdgeConfig(name="a1", cdn="a"), EdgeConfig(name="b1", cdn="b")),
    records_flush_s=0.2, viewer_idle_s=1.5, viewer_sample_s=0.2,
)
PLAYER_CADENCE_S = 0.25  # how often a simulated player fetches (its pace, not a sync)


@pytest.fixture
def prefix() -> Iterator[str]:
    yield from redis_key_prefix("viewers")


async def _caster(api: httpx.AsyncClient) -> dict[str, str]:
    await api.post("/api/users/register", json={
        "username": "caster", "email": "c@example.com", "password": "pass word 1"})
    tokens = (await api.post("/api/users/login", json={
        "login": "caster", "password": "pass word 1"})).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def _until(api: httpx.AsyncClient, stream_id: str,
                 check: Callable[[dict[str, Any]], bool], *, timeout_s: float = 30,
                 ) -> dict[str, Any]:
    """Poll the stream until `check(body)`; the body from the list must agree."""
    with trio.fail_after(timeout_s):
        while True:
            body: dict[str, Any] = (await api.get(f"/api/streams/{stream_id}")).json()
            if check(body):
                listed = (await api.get("/api/streams", params={"user_id": body["user_id"]}
                                        )).json()["items"]
                mine = next(s for s in listed if s["id"] == stream_id)
                if check(mine):
                    return body
            await trio.sleep(0.1)  # polls another service over HTTP


def _watching(n: int) -> Callable[[dict[str, Any]], bool]:
    return lambda body: body["viewer_count"] == n


async def test_recorded_sessions_show_in_the_api_then_drop_to_zero(
    tmp_path: Path, prefix: str
) -> None:
    bus_url = f"{REDIS}?prefix={prefix}"
    base = make_config(tmp_path, cdn=CDN)
    config = dataclasses.replace(base, chat=dataclasses.replace(base.chat, bus_url=bus_url))
    viewers = 7
    async with running_platform(config, ("gateway", "analytics")) as platform, \
            httpx.AsyncClient(base_url=platform.api_url.removesuffix("/api"),
                              timeout=30) as api:
        auth = await _caster(api)
        stream = (await api.post("/api/streams/start", headers=auth,
                                 json={"title": "counted", "category": "test"})).json()
        stream_id = stream["stream"]["id"]
        assert stream["stream"]["viewer_count"] == 0
        assert stream["stream"]["unique_viewers"] == 0
        assert stream["stream"]["viewers_by_rendition"] == {}
        bus = await open_bus(bus_url, shards=config.chat.shards)  # "another process"
        try:
            async def send(batch: UsageBatch) -> None:
                await bus.enqueue(RECORDS_QUEUE, batch.stream_id, batch.encode())

            edges = [UsageRecorder("a1", "a"), UsageRecorder("b1", "b")]
            stop = trio.Event()
            async with trio.open_nursery() as nursery:
                for recorder in edges:
                    nursery.start_soon(lambda r=recorder: r.run(
                        send, interval_s=CDN.records_flush_s, shutdown=stop))

                async def players() -> None:  # viewer k fetches from both CDNs
                    while not stop.is_set():
                        for k in range(viewers):
                            rendition = "720p" if k < 4 else "360p"
                            for recorder in edges:
                                recorder.record(stream_id, rendition, f"viewer-{k}", 1000)
                        await trio.sleep(PLAYER_CADENCE_S)

                nursery.start_soon(players)
                body = await _until(api, stream_id, _watching(viewers))
                assert body["unique_viewers"] == viewers
                assert body["peak_viewers"] == viewers
                assert body["viewers_by_rendition"] == {"720p": 4, "360p": 3}
                stop.set()
            body = await _until(api, stream_id, _watching(0))
            assert (body["peak_viewers"], body["unique_viewers"]) == (viewers, viewers)
            assert body["viewers_by_rendition"] == {}
        finally:
            await bus.close()


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    config: Config = make_config(tmp_path, cdn=CDN)
    config = dataclasses.replace(config, media=MediaConfig(
        rtmp_port=0, reconnect_grace_s=0.5, ladder="source,160p", segment_s=1.0,
        part_s=0.25, key_check_s=0.25, skip_until_s=6.0))
    services = ("gateway", "media", "origin", "edge", "analytics")
    async with running_platform(config, services) as platform, \
            httpx.AsyncClient(base_url=platform.api_url.removesuffix("/api"),
                              timeout=30) as api:
        yield Live(platform, api, await _caster(api), platform.url("media", "rtmp"),
                   platform.url("origin", "hls"))


class Players:
    """Simulated viewers: which have got a segment, and the bytes they were sent."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.played: set[str] = set()
        self.all_played = trio.Event()
        self.received_bytes = 0  # every answer's body
        self.ok_bytes = 0  # 200 answers' bodies
        self.stop = trio.Event()

    async def get(self, client: httpx.AsyncClient, url: str) -> httpx.Response:
        response = await client.get(url)
        self.received_bytes += len(response.content)
        if response.status_code == 200:
            self.ok_bytes += len(response.content)
        return response

    async def play(self, client: httpx.AsyncClient, bases: list[str], stream_id: str,
                   sid: str) -> None:
        """The master, then the 160p playlist and its newest segment, again and again,
        round-robin over `bases`, each request carrying the player's CMCD session id."""
        cmcd = "CMCD=" + quote(f'sid="{sid}"', safe="")
        turn = 0
        while not self.stop.is_set():
            base = f"{bases[turn % len(bases)]}/live/{stream_id}"
            turn += 1
            await self.get(client, f"{base}/master.m3u8?{cmcd}")
            playlist = await self.get(client, f"{base}/160p/index.m3u8?{cmcd}")
            if playlist.status_code == 200:
                segments = m3u8.loads(playlist.text).segments
                if segments:
                    segment = await self.get(client,
                                             f"{base}/160p/{segments[-1].uri}?{cmcd}")
                    if segment.status_code == 200:
                        self.played.add(sid)
                        if len(self.played) == self.total:
                            self.all_played.set()
            await trio.sleep(PLAYER_CADENCE_S)


@pytest.mark.slow
async def test_players_with_cmcd_through_real_edges_are_counted(live: Live) -> None:
    edges = live.platform.handle("edge", "edges")
    assert isinstance(edges, dict)
    a1, b1 = edges["a1"].url, edges["b1"].url
    stream_id, key = await _start(live)
    only_a, both = 3, 2  # 2 players alternate between CDNs: each counts once
    direct = 1  # one on the origin itself (its fallback), counted from the origin's records
    players_total = only_a + both + direct
    viewers = Players(players_total)

    async with trio.open_nursery() as nursery:
        publisher = await _publish_live(live, nursery, stream_id, key, 40)
        async with httpx.AsyncClient(timeout=30) as client, trio.open_nursery() as players:
            for k in range(only_a):
                players.start_soon(viewers.play, client, [a1], stream_id, f"a-{k}")
            for k in range(both):
                players.start_soon(viewers.play, client, [a1, b1], stream_id, f"ab-{k}")
            for k in range(direct):
                players.start_soon(viewers.play, client, [live.hls], stream_id, f"o-{k}")
            with trio.fail_after(30):
                await viewers.all_played.wait()  # every player is past the master, playing
            body = await _until(live.api, stream_id, _watching(players_total))
            assert body["unique_viewers"] == players_total
            assert body["viewers_by_rendition"] == {"160p": players_total}
            viewers.stop.set()
        body = await _until(live.api, stream_id, _watching(0))
        assert (body["peak_viewers"], body["unique_viewers"]) == (players_total,) * 2
        # the bytes the players got, recorded once by the edge or origin that sent them
        # (edges record every answer, the origin its 200s: in between)
        async with await open_store(live.platform.config.storage_url) as store:
            samples = await store.list_viewer_samples(stream_id)
        assert viewers.ok_bytes <= sum(s.bytes for s in samples) <= viewers.received_bytes
        assert max(s.concurrent for s in samples) == players_total
        assert samples[-1].concurrent == 0
        assert sum(s.watch_s for s in samples) > 0
        await live.api.post(f"/api/streams/{stream_id}/stop", headers=live.auth)
        publisher.terminate()
    ended = (await live.api.get(f"/api/streams/{stream_id}")).json()
    assert (ended["status"], ended["viewer_count"], ended["peak_viewers"]) == (
        "ended", 0, players_total)
