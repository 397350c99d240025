"""The HTTP fault proxy in front of a small live origin stand-in (lean listener, real
sockets): each fault does what it says, and clear() restores the clean answers."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest
import trio
import trio.testing

from chaos.http_faults import HttpFaultProxy
from streamscale.services.lean_http import Head, Holds, HTTPServer, Limits, Reply, Request

_M3U8 = Head(200, [(b"content-type", b"application/vnd.apple.mpegurl")])
_PART = Head(200, [(b"content-type", b"video/mp4")])


@dataclass
class Origin:
    """Each media playlist request returns a newer version; parts echo their name."""

    version: int = 0
    port: int = 0

    async def handle(self, request: Request, holds: Holds) -> Reply:
        path = request.target.decode()
        if path.endswith(".m3u8"):
            self.version += 1
            return _M3U8, b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:%d\n" % self.version
        return _PART, path.encode()


@pytest.fixture
async def faults(nursery: trio.Nursery) -> HttpFaultProxy:
    origin = Origin()
    server = HTTPServer(origin.handle, Limits())
    listeners = await nursery.start(lambda task_status: server.serve(
        host="127.0.0.1", port=0, shutdown=trio.Event(), task_status=task_status))
    origin.port = listeners[0].socket.getsockname()[1]
    proxy = HttpFaultProxy(f"http://127.0.0.1:{origin.port}", seed=7)
    await nursery.start(proxy.serve)
    return proxy


async def test_clean_proxy_forwards(faults: HttpFaultProxy) -> None:
    async with httpx.AsyncClient(base_url=faults.url) as client:
        first = await client.get("/live/s/160p/index.m3u8")
        second = await client.get("/live/s/160p/index.m3u8")
        part = await client.get("/live/s/160p/seg3.1.m4s")
    assert first.status_code == 200 and first.text != second.text
    assert first.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert part.content == b"/live/s/160p/seg3.1.m4s"


async def test_error_share_and_error_path(faults: HttpFaultProxy) -> None:
    faults.error_share = 0.3
    async with httpx.AsyncClient(base_url=faults.url) as client:
        codes = [(await client.get(f"/live/s/160p/p{i}.m4s")).status_code for i in range(200)]
        assert set(codes) == {200, 503}
        assert 30 <= codes.count(503) <= 90  # seeded: about 30 %
        faults.clear()
        faults.error_path = r"/360p/"
        faults.error_status = 500
        assert (await client.get("/live/s/360p/index.m3u8")).status_code == 500
        assert (await client.get("/live/s/160p/index.m3u8")).status_code == 200
        faults.clear()
        assert (await client.get("/live/s/360p/index.m3u8")).status_code == 200
    with pytest.raises(ValueError, match="5xx"):
        HttpFaultProxy("http://x", error_status=404)


async def test_stuck_playlist_serves_the_same_version_until_released(
    faults: HttpFaultProxy,
) -> None:
    async with httpx.AsyncClient(base_url=faults.url) as client:
        faults.stick_playlists()
        stuck = {(await client.get("/live/s/160p/index.m3u8?_HLS_msn=9")).text
                 for _ in range(5)}
        assert len(stuck) == 1 and faults.stats.stale_playlists == 4
        master = [(await client.get("/live/s/master.m3u8")).text for _ in range(2)]
        assert master[0] != master[1]  # the master is not a media playlist: not frozen
        faults.clear()
        assert (await client.get("/live/s/160p/index.m3u8")).text not in stuck


async def test_missing_parts_are_404_and_playlists_are_not(faults: HttpFaultProxy) -> None:
    faults.missing_path = r"\.2\.m4s$"
    async with httpx.AsyncClient(base_url=faults.url) as client:
        assert (await client.get("/live/s/160p/seg1.2.m4s")).status_code == 404
        assert (await client.get("/live/s/160p/seg1.1.m4s")).status_code == 200
        faults.missing_path, faults.missing_share = "", 1.0
        assert (await client.get("/live/s/160p/seg1.1.m4s")).status_code == 404
        assert (await client.get("/live/s/160p/index.m3u8")).status_code == 200
    assert faults.stats.missing == 2


async def test_late_parts_are_delayed_and_playlists_are_not(
    faults: HttpFaultProxy, autojump_clock: trio.testing.MockClock
) -> None:
    faults.late_s = 3.0
    async with httpx.AsyncClient(base_url=faults.url) as client:
        start = trio.current_time()
        assert (await client.get("/live/s/160p/index.m3u8")).status_code == 200
        assert trio.current_time() - start < 3.0
        start = trio.current_time()
        assert (await client.get("/live/s/160p/seg1.1.m4s")).status_code == 200
        assert trio.current_time() - start == pytest.approx(3.0, abs=0.1)
    assert faults.stats.late == 1
