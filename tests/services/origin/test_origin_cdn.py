"""The origin behind CDNs: steered masters and the steering manifest over HTTP, direct
viewers admitted up to the limit (503 with a reason past it, at once), edge fetches never
limited, slots freed after idle, direct viewers recorded for the viewer counts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from streamscale.config import CdnConfig, EdgeConfig
from streamscale.services.cdn.health import CdnHealth
from streamscale.services.cdn.records import UsageRecorder
from streamscale.services.cdn.steering import Steering
from streamscale.services.origin import Admission, MediaRegistry, serve_origin

from .conftest import origin_client
from .streams import LiveFeeder

EDGES = (EdgeConfig(name="a1", cdn="a", port=9001), EdgeConfig(name="b1", cdn="b", port=9002))
IDLE_S = 10.0


@dataclass
class CdnOrigin:
    url: str
    registry: MediaRegistry
    health: CdnHealth
    admission: Admission
    recorder: UsageRecorder


@pytest.fixture
async def cdn_origin(tmp_path: Path) -> AsyncIterator[CdnOrigin]:
    cdn = CdnConfig(edges=EDGES, origin_viewer_limit=1, origin_session_idle_s=IDLE_S)
    health = CdnHealth(cdn, resolve=lambda edge: f"http://{edge.name}.test")
    steering = Steering(health)
    admission = Admission(cdn.origin_viewer_limit, cdn.origin_session_idle_s)
    recorder = UsageRecorder("origin", clock=trio.current_time)
    registry, shutdown = MediaRegistry(), trio.Event()
    async with trio.open_nursery() as nursery:
        url: str = await nursery.start(partial(
            serve_origin, registry, tmp_path, host="127.0.0.1", port=0, shutdown=shutdown,
            steering=steering, admission=admission, recorder=recorder))
        steering.origin_url = url
        LiveFeeder(registry).seconds(1.5)
        yield CdnOrigin(url, registry, health, admission, recorder)
        shutdown.set()


def viewer(sid: str) -> dict[str, str]:
    """A player's CMCD query (hls.js with `cmcd: {}` adds it to every request)."""
    return {"CMCD": f'ot=m,sf=l,sid="{sid}",su'}


EDGE = {"x-streamscale-edge": "a1"}


async def test_master_lists_pathways_and_steering(cdn_origin: CdnOrigin) -> None:
    async with origin_client(cdn_origin.url) as client:
        r = await client.get("/live/s1/master.m3u8", headers=EDGE)
        assert r.status_code == 200
        assert "http://a1.test/live/s1/hi/index.m3u8" in r.text
        assert f"{cdn_origin.url}/live/s1/lo/index.m3u8" in r.text
        assert f'SERVER-URI="{cdn_origin.url}/steering/s1.json",PATHWAY-ID="a"' in r.text

        r = await client.get("/steering/s1.json",
                             params={"_HLS_pathway": "b", "_HLS_throughput": "5000000"})
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["access-control-allow-origin"] == "*"
        assert r.json()["PATHWAY-PRIORITY"] == ["a", "b", "origin"]
        assert r.json()["RELOAD-URI"] == f"{cdn_origin.url}/steering/s1.json"

        cdn_origin.health.record({"a1": False, "b1": False})
        cdn_origin.health.record({"a1": False, "b1": False})
        r = await client.get("/steering/s1.json")
        assert json.loads(r.content)["PATHWAY-PRIORITY"] == ["origin", "a", "b"]
        r = await client.get("/live/s1/master.m3u8", headers=EDGE)
        assert 'PATHWAY-ID="origin"\n' in r.text.split("#EXT-X-STREAM-INF")[0]

        for path in ("/steering/nope.json", "/steering/s1", "/steering/s%2F1.json",
                     "/steering/.json"):
            assert (await client.get(path)).status_code == 404, path


async def test_direct_viewers_past_the_limit_get_a_clear_503(
    cdn_origin: CdnOrigin, autojump_clock: trio.testing.MockClock
) -> None:
    async with origin_client(cdn_origin.url) as client:
        first = await client.get("/live/s1/master.m3u8", params=viewer("one"))
        assert first.status_code == 200
        with trio.fail_after(1):  # answered at once, never parked
            refused = await client.get("/live/s1/hi/index.m3u8", params=viewer("two"))
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "10"
        assert refused.headers["cache-control"] == "no-store"
        assert refused.text == ("origin at capacity: 1 direct viewers; the CDNs are down or "
                                "you bypassed them; retry later\n")
        # the admitted session goes on; edges are never limited
        assert (await client.get("/live/s1/hi/index.m3u8", params=viewer("one"))).status_code \
            == 200
        assert (await client.get("/live/s1/hi/init.mp4", headers=EDGE)).status_code == 200
        assert cdn_origin.admission.active == 1

        # one stays idle past origin_session_idle_s: its slot goes to the next viewer
        await trio.sleep(IDLE_S + 0.5)
        assert (await client.get("/live/s1/master.m3u8", params=viewer("two"))).status_code \
            == 200
        refused = await client.get("/live/s1/master.m3u8", params=viewer("one"))
        assert refused.status_code == 503


async def test_direct_viewers_are_recorded_edges_are_not(cdn_origin: CdnOrigin) -> None:
    async with origin_client(cdn_origin.url) as client:
        master = await client.get("/live/s1/master.m3u8", params=viewer("one"))
        init = await client.get("/live/s1/hi/init.mp4", params=viewer("one"))
        await client.get("/live/s1/lo/init.mp4", headers=EDGE)
        await client.get("/live/s1/lo/init.mp4", params=viewer("two"))  # refused: not served
    (batch,) = cdn_origin.recorder.take()
    assert batch.source == "origin" and batch.cdn == "" and batch.stream_id == "s1"
    (usage,) = batch.sessions
    assert usage.session == "one" and usage.rendition == "hi" and usage.requests == 2
    assert usage.bytes == len(master.content) + len(init.content)


async def test_without_a_reachable_cdn_the_master_is_plain(tmp_path: Path) -> None:
    """Edges on port 0 that no process here started: no pathway to list."""
    cdn = CdnConfig(edges=(EdgeConfig(name="a1", cdn="a"),))
    registry, shutdown = MediaRegistry(), trio.Event()
    async with trio.open_nursery() as nursery:
        url: str = await nursery.start(partial(
            serve_origin, registry, tmp_path, host="127.0.0.1", port=0, shutdown=shutdown,
            steering=Steering(CdnHealth(cdn))))
        LiveFeeder(registry).seconds(1.5)
        async with origin_client(url) as client:
            r = await client.get("/live/s1/master.m3u8")
        assert "CONTENT-STEERING" not in r.text and "\nhi/index.m3u8\n" in r.text
        shutdown.set()


def test_admission_is_per_session_and_frees_idle_slots() -> None:
    now = [0.0]
    admission = Admission(2, 5.0, clock=lambda: now[0])
    assert admission.admit("a") and admission.admit("b")
    assert not admission.admit("c") and admission.refused == 1
    now[0] = 4.0
    assert admission.admit("a")  # a request keeps the slot
    now[0] = 5.5  # b idle 5.5 s: freed; a (seen at 4.0) is not
    assert admission.admit("c")
    assert not admission.admit("d")
    assert admission.active == 2
    now[0] = 100.0
    assert admission.active == 0


async def test_a_client_without_cmcd_is_one_session(cdn_origin: CdnOrigin) -> None:
    """httpx without CMCD: one session by address + user agent, however many requests."""
    async with httpx.AsyncClient(base_url=cdn_origin.url) as client:
        for _ in range(5):
            assert (await client.get("/live/s1/hi/init.mp4")).status_code == 200
    assert cdn_origin.admission.active == 1


async def test_a_steering_reload_with_nothing_new_is_held(
    cdn_origin: CdnOrigin, autojump_clock: trio.testing.MockClock
) -> None:
    """A player already on the first pathway waits for news (up to the hold: the reload
    period less the manifest's 1 s TTL); one elsewhere, or one without _HLS_pathway, is
    answered at once."""
    async with origin_client(cdn_origin.url) as client:

        async def reload(pathway: str | None) -> tuple[float, list[str]]:
            start = trio.current_time()
            params = {} if pathway is None else {"_HLS_pathway": pathway}
            r = await client.get("/steering/s1.json", params=params)
            assert r.status_code == 200
            return trio.current_time() - start, r.json()["PATHWAY-PRIORITY"]

        waited, priority = await reload("b")
        assert waited < 0.5 and priority == ["a", "b", "origin"]
        waited, _ = await reload(None)
        assert waited < 0.5
        waited, priority = await reload("a")
        assert 4.0 <= waited < 4.5 and priority == ["a", "b", "origin"]  # 5 s period - 1 s TTL

        async with trio.open_nursery() as nursery:
            answers: list[tuple[float, list[str]]] = []

            async def held() -> None:
                answers.append(await reload("a"))

            nursery.start_soon(held)
            await trio.sleep(1.0)
            cdn_origin.health.record({"a1": False, "b1": True})
            cdn_origin.health.record({"a1": False, "b1": True})  # a is down: news
        ((waited, priority),) = answers
        assert 1.0 <= waited < 1.5 and priority == ["b", "a", "origin"]
