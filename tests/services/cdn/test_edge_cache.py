"""What the edge stores, for how long, and within what memory: the upstream's
Cache-Control decides; the byte budget evicts the least recently used."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio
import trio.testing

from streamscale.services.cdn.edge import Edge
from streamscale.services.lean_http import CORS, Head, Holds, Reply, Request, text_reply

from ..origin.streams import RawClient
from .conftest import CountingOrigin, open_counting_origin, open_edge

MiB = 1024 * 1024
# path -> (status, cache-control) the scripted upstream answers with
POLICIES = {
    "fresh1": (200, b"max-age=1"),
    "immutable": (200, b"public, max-age=31536000, immutable"),
    "bareimmutable": (200, b"immutable"),
    "nostore": (200, b"no-store"),
    "private": (200, b"private, max-age=60"),
    "nocache": (200, b"no-cache"),
    "none": (200, b""),
    "shared": (200, b"max-age=0, s-maxage=5"),
    "missing": (404, b"max-age=1"),
    "busy": (503, b"max-age=60"),
    "broken": (500, b"max-age=60"),
}


class Scripted:
    """An upstream answering /live/s1/hi/<policy>[-<n>][.<kb>k] with the policy's
    Cache-Control and a body of <kb> KiB (default a short text naming the request count)."""

    def __init__(self) -> None:
        self.served = 0

    async def __call__(self, request: Request, holds: Holds) -> Reply:
        self.served += 1
        name = request.target.decode().rsplit("/", 1)[1].partition("?")[0]
        policy, _, size = name.partition(".")
        status, cache_control = POLICIES[policy.partition("-")[0]]
        body = (b"x" * (int(size.removesuffix("k")) * 1024) if size
                else b"answer %d" % self.served)
        head = Head(status, [(b"content-type", b"video/iso.segment"),
                             (b"cache-control", cache_control), CORS])
        return head, body


@pytest.fixture
async def scripted() -> AsyncIterator[CountingOrigin]:
    async with open_counting_origin(Scripted()) as running:
        yield running


async def _get(client: httpx.AsyncClient, edge: Edge, name: str) -> httpx.Response:
    return await client.get(f"{edge.url}/live/s1/hi/{name}")


async def test_cache_control_is_obeyed(
    scripted: CountingOrigin, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_edge("a1", scripted.url) as edge, httpx.AsyncClient() as client:
        first = {name: await _get(client, edge, name) for name in POLICIES}
        for name, r in first.items():
            status, cache_control = POLICIES[name]
            assert r.status_code == status and r.headers["x-cache"] == "MISS", name
            assert r.headers.get("cache-control", "") == cache_control.decode(), name
            assert r.headers["content-type"] == "video/iso.segment"
            assert r.headers["access-control-allow-origin"] == "*"
        second = {name: await _get(client, edge, name) for name in POLICIES}
        stored = {name for name, r in second.items() if r.headers["x-cache"] == "HIT"}
        assert stored == {"fresh1", "immutable", "bareimmutable", "shared", "missing"}
        for name in stored:
            assert second[name].content == first[name].content, name
        for name in POLICIES.keys() - stored:  # refetched, a new answer
            assert second[name].content != first[name].content, name
            assert scripted.counts[f"/live/s1/hi/{name}".encode()] == 2

        await trio.sleep(1.5)  # mock time: past max-age=1, within s-maxage=5
        third = {name: await _get(client, edge, name) for name in stored}
        assert {name for name, r in third.items() if r.headers["x-cache"] == "HIT"} == {
            "immutable", "bareimmutable", "shared"}
        await trio.sleep(10 * 24 * 3600)
        later = {name: await _get(client, edge, name) for name in ("immutable", "shared")}
        assert later["immutable"].headers["x-cache"] == "HIT"
        assert later["immutable"].content == first["immutable"].content
        assert later["shared"].headers["x-cache"] == "MISS"


async def test_lru_eviction_keeps_the_cache_within_budget(scripted: CountingOrigin) -> None:
    async with open_edge("a1", scripted.url, cache_mb=1) as edge, \
            httpx.AsyncClient() as client:
        for name in ("fresh1-a.250k", "immutable-b.250k", "immutable-c.250k",
                     "immutable-d.250k"):
            assert (await _get(client, edge, name)).status_code == 200
        assert edge.stats.evictions == 0
        assert (await _get(client, edge, "immutable-b.250k")).headers["x-cache"] == "HIT"
        # a fifth pushes out the least recently used ("fresh1-a"), not the one just read
        await _get(client, edge, "immutable-e.250k")
        assert edge.stats.evictions == 1
        assert (await _get(client, edge, "immutable-b.250k")).headers["x-cache"] == "HIT"
        assert (await _get(client, edge, "immutable-c.250k")).headers["x-cache"] == "HIT"
        for i in range(20):
            await _get(client, edge, f"immutable-{i}.150k")
            assert edge.stats.cached_bytes <= MiB
        assert edge.stats.evictions > 10
        assert len(edge.routes.cache) * 150 * 1024 <= MiB

        # bigger than a quarter of the budget: served whole, never stored
        big = await _get(client, edge, "immutable-big.300k")
        assert big.status_code == 200 and len(big.content) == 300 * 1024
        again = await _get(client, edge, "immutable-big.300k")
        assert again.headers["x-cache"] == "MISS" and again.content == big.content
        assert scripted.counts[b"/live/s1/hi/immutable-big.300k"] == 2


async def test_head_is_served_from_a_get_upstream(scripted: CountingOrigin) -> None:
    async with open_edge("a1", scripted.url) as edge, httpx.AsyncClient() as client:
        head = await client.head(f"{edge.url}/live/s1/hi/immutable.10k")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(10 * 1024)
        got = await _get(client, edge, "immutable.10k")
        assert got.headers["x-cache"] == "HIT" and len(got.content) == 10 * 1024
        assert scripted.counts[b"/live/s1/hi/immutable.10k"] == 1


async def test_only_media_paths_go_upstream(scripted: CountingOrigin) -> None:
    async with open_edge("a1", scripted.url) as edge, httpx.AsyncClient() as client:
        for path in ("/", "/elsewhere/s1/x/y", "/live/s%2F1/hi/x", "/live/s1",
                     "/api/streams"):
            r = await client.get(f"{edge.url}{path}")
            assert r.status_code == 404 and r.text == "not found\n", path
        raw = await RawClient.connect(edge.url)  # a non-ASCII target: h11 refuses it
        await raw.send_raw(b"GET /live/s1/\xff/0.m4s HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await raw.response()
        assert answer is not None and answer[0].status_code == 400
        await raw.aclose()
        assert sum(scripted.counts.values()) == 0


def test_text_reply_unchanged() -> None:
    head, body = text_reply(404, "x")  # the origin's shape still works
    assert head.status == 404 and body == b"x\n"


class LivePlaylist:
    """A live LL-HLS media playlist whose max-age (1 s, whole seconds) spans three parts."""

    def __init__(self) -> None:
        self.served = 0

    async def __call__(self, request: Request, holds: Holds) -> Reply:
        self.served += 1
        body = (b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=0.334\n"
                b"#EXT-X-MEDIA-SEQUENCE:%d\n" % self.served)
        return Head(200, [(b"content-type", b"application/vnd.apple.mpegurl"),
                          (b"cache-control", b"max-age=1"), CORS]), body


async def test_a_live_playlist_is_kept_one_part_target_at_most(
    autojump_clock: trio.testing.MockClock
) -> None:
    async with open_counting_origin(LivePlaylist()) as origin, \
            open_edge("a1", origin.url) as edge, httpx.AsyncClient() as client:
        url = f"{edge.url}/live/s1/hi/index.m3u8"
        first = await client.get(url)
        assert (await client.get(url)).headers["x-cache"] == "HIT"
        await trio.sleep(0.3)  # mock time: within the part target
        assert (await client.get(url)).content == first.content
        await trio.sleep(0.1)  # past 0.334 s, long before max-age=1
        later = await client.get(url)
        assert later.headers["x-cache"] == "MISS" and later.content != first.content
        assert origin.counts[b"/live/s1/hi/index.m3u8"] == 2
