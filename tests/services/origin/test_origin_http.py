"""Routes, playlists, caching headers and the blocking rules, through real HTTP."""

from __future__ import annotations

import httpx
import m3u8
import pytest
import trio
import trio.testing

from streamscale.protocols.hls import PackagerConfig
from streamscale.testing.hls_validate import validate_all

from .conftest import Origin
from .streams import LiveFeeder

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
IMMUTABLE = "public, max-age=31536000, immutable"


async def parked(origin: Origin, stream_id: str = "s1", n: int = 1) -> None:
    """Wait until `n` requests are held by the origin (no sleeps: poll when all idle)."""
    with trio.fail_after(5):
        while origin.registry.waiting(stream_id) < n:
            await trio.testing.wait_all_tasks_blocked()


async def test_master_and_media_playlists_parse(origin: Origin, client: httpx.AsyncClient) -> None:
    feed = LiveFeeder(origin.registry)
    feed.seconds(1.5)
    r = await client.get("/live/s1/master.m3u8")
    assert r.status_code == 200
    assert r.headers["content-type"] == PLAYLIST_TYPE
    assert r.headers["cache-control"] == "max-age=1"
    assert r.headers["access-control-allow-origin"] == "*"
    assert int(r.headers["content-length"]) == len(r.content)
    master = m3u8.loads(r.text)
    assert [p.uri for p in master.playlists] == ["hi/index.m3u8", "lo/index.m3u8"]
    assert master.playlists[0].stream_info.resolution == (320, 240)

    media = m3u8.loads((await client.get("/live/s1/hi/index.m3u8")).text)
    assert media.server_control.can_block_reload == "YES"
    assert media.segments[0].uri == "0.m4s"
    assert media.preload_hint is not None and media.preload_hint.uri.endswith(".m4s")
    assert any(seg.parts for seg in media.segments)
    assert not media.is_endlist

    for path in ("/live/s1/master.m3u8?classic=1", "/live/s1/master_classic.m3u8"):
        classic = m3u8.loads((await client.get(path)).text)
        assert [p.uri for p in classic.playlists] == ["hi/classic.m3u8", "lo/classic.m3u8"]
    plain = m3u8.loads((await client.get("/live/s1/lo/classic.m3u8")).text)
    assert plain.segments[0].uri == "0.m4s" and not any(s.parts for s in plain.segments)


async def test_media_headers_and_head(origin: Origin, client: httpx.AsyncClient) -> None:
    feed = LiveFeeder(origin.registry)
    feed.seconds(1.5)
    init = await client.get("/live/s1/hi/init.mp4")
    assert init.headers["content-type"] == "video/mp4"
    assert init.headers["cache-control"] == IMMUTABLE
    assert init.content == feed.hi.init_segment
    for name in ("0.m4s", "0.1.m4s", "1.0.m4s"):
        r = await client.get(f"/live/s1/hi/{name}")
        assert r.status_code == 200, name
        assert r.headers["content-type"] == "video/iso.segment"
        assert r.headers["cache-control"] == IMMUTABLE
        assert r.headers["access-control-allow-origin"] == "*"
        assert r.content == feed.hi.resource(name)[1]
    head = await client.head("/live/s1/hi/0.m4s")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(feed.hi.segment(0)[1] or b"")


async def test_errors_have_short_bodies_and_right_caching(
    origin: Origin, client: httpx.AsyncClient
) -> None:
    feed = LiveFeeder(origin.registry)
    feed.seconds(1.5)
    last = feed.hi.position.last_msn
    cases = {
        "/live/nope/master.m3u8": 404,
        "/live/s1/nope/index.m3u8": 404,
        "/live/s1/hi/9.m4s": 404,  # far future
        "/live/s1/hi/0.7.m4s": 404,  # a part that never existed
        "/live/s1/hi/x.m4s": 404,
        "/live/s1/hi/a/b": 404,
        "/elsewhere/s1/x": 404,
        "/live/s%2F1/master.m3u8": 404,
        f"/live/s1/hi/index.m3u8?_HLS_msn={last + 3}": 400,  # too far ahead to block on
        "/live/s1/hi/index.m3u8?_HLS_msn=abc": 400,
        "/live/s1/hi/index.m3u8?_HLS_part=1": 400,
        "/live/s1/hi/index.m3u8?_HLS_msn=1&_HLS_msn=2": 400,
        "/live/s1/hi/index.m3u8?_HLS_skip=maybe": 400,
    }
    for path, status in cases.items():
        r = await client.get(path)
        assert r.status_code == status, path
        assert r.headers["content-type"].startswith("text/plain")
        assert 0 < len(r.content) < 300
        assert r.headers["cache-control"] == ("max-age=1" if status == 404 else "no-store")
    r = await client.post("/live/s1/hi/index.m3u8", content=b"x")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD, OPTIONS"
    r = await client.delete("/live/s1/hi/0.m4s")
    assert r.status_code == 405
    r = await client.options("/live/s1/hi/0.m4s")
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "*"
    assert (await client.get("/live/s1/master.m3u8")).status_code == 200  # still serving


async def test_expired_segment_is_404(origin: Origin, client: httpx.AsyncClient) -> None:
    feed = LiveFeeder(
        origin.registry,
        config=PackagerConfig(segment_target_s=1.0, window_segments=1, retain_segments=0),
    )
    feed.seconds(3.5)
    assert feed.hi.position.last_msn >= 2
    r = await client.get("/live/s1/hi/0.m4s")
    assert r.status_code == 404 and r.text == "expired\n"
    assert (await client.get("/live/s1/hi/0.0.m4s")).status_code == 404
    assert (await client.get(f"/live/s1/hi/{feed.hi.position.last_msn}.m4s")).status_code == 200


async def test_blocking_reload_returns_when_the_part_is_pushed(
    origin: Origin, client: httpx.AsyncClient
) -> None:
    feed = LiveFeeder(origin.registry)
    feed.seconds(1.2)
    hint = m3u8.loads((await client.get("/live/s1/hi/index.m3u8")).text).preload_hint.uri
    want = tuple(int(x) for x in hint.split(".")[:2])
    results: list[httpx.Response] = []

    async def reload() -> None:
        results.append(await client.get(
            f"/live/s1/hi/index.m3u8?_HLS_msn={want[0]}&_HLS_part={want[1]}"
        ))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reload)
            await parked(origin)
            assert not results
            feed.parts(1)  # the part it asked for
        r = results[0]
    assert r.status_code == 200
    assert r.headers["cache-control"] == "public, max-age=30"
    playlist = m3u8.loads(r.text)
    uris = [p.uri for seg in playlist.segments for p in seg.parts]
    assert f"{want[0]}.{want[1]}.m4s" in uris
    assert origin.registry.waiting("s1") == 0


async def test_preload_hinted_part_is_held_until_pushed(
    origin: Origin, client: httpx.AsyncClient
) -> None:
    feed = LiveFeeder(origin.registry)
    feed.seconds(1.2)
    hint = m3u8.loads((await client.get("/live/s1/lo/index.m3u8")).text).preload_hint.uri
    results: list[httpx.Response] = []

    async def fetch() -> None:
        results.append(await client.get(f"/live/s1/lo/{hint}"))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fetch)
            await parked(origin)
            feed.parts(1)
    assert results[0].status_code == 200
    assert results[0].content == feed.renditions[1].resource(hint)[1]


async def test_ended_stream_releases_waiters_and_lists_endlist(
    origin: Origin, client: httpx.AsyncClient
) -> None:
    feed = LiveFeeder(origin.registry)
    feed.seconds(3.0)
    pos = feed.hi.position
    results: list[httpx.Response] = []

    async def reload() -> None:
        results.append(await client.get(f"/live/s1/hi/index.m3u8?_HLS_msn={pos.last_msn + 2}"))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reload)
            await parked(origin)
            feed.end()
    assert m3u8.loads(results[0].text).is_endlist


async def test_blocking_reload_times_out_with_503(
    origin: Origin, client: httpx.AsyncClient, autojump_clock: trio.testing.MockClock
) -> None:
    feed = LiveFeeder(origin.registry)
    feed.seconds(1.2)
    pos = feed.hi.position
    start = trio.current_time()
    r = await client.get(f"/live/s1/hi/index.m3u8?_HLS_msn={pos.last_msn + 1}")
    assert r.status_code == 503 and r.headers["cache-control"] == "no-store"
    assert trio.current_time() - start == pytest.approx(feed.hi.blocking_timeout_s, abs=0.5)
    hint = m3u8.loads((await client.get("/live/s1/hi/index.m3u8")).text).preload_hint.uri
    r = await client.get(f"/live/s1/hi/{hint}")
    assert r.status_code == 503


DELTA = PackagerConfig(segment_target_s=1.0, skip_until_s=6.0, window_segments=12)


async def test_delta_update_skips_old_segments(
    origin: Origin, client: httpx.AsyncClient, strict_playlists: list[tuple[str, bytes]]
) -> None:
    feed = LiveFeeder(origin.registry, config=DELTA, frames=300)
    feed.seconds(9.5)
    r_full = await client.get("/live/s1/hi/index.m3u8")
    r_delta = await client.get("/live/s1/hi/index.m3u8?_HLS_skip=YES")
    r_v2 = await client.get("/live/s1/hi/index.m3u8?_HLS_skip=v2")
    for r in (r_full, r_delta, r_v2):
        assert r.status_code == 200 and r.headers["cache-control"] == "max-age=1"
    full, delta, v2 = validate_all([r.content for r in (r_full, r_delta, r_v2)])
    assert full["canSkipUntil"] == pytest.approx(6.0)  # six target durations
    assert full["skipped"] == 0 and "#EXT-X-SKIP" not in r_full.text
    skipped = delta["skipped"]
    assert skipped >= 2
    assert f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}\n" in r_delta.text
    assert delta["mediaSequence"] == full["mediaSequence"] == 0
    # The delta is the full playlist without its first `skipped` segments.
    assert delta["segments"] == full["segments"][skipped:]
    assert delta["segments"][0]["msn"] == skipped
    # What was skipped lies beyond the skip boundary; what is listed does not.
    from_end = [sum(s["duration"] or sum(s["parts"]) for s in full["segments"][i:])
                for i in range(len(full["segments"]))]
    assert from_end[skipped - 1] - full["segments"][skipped - 1]["duration"] >= 6.0
    assert from_end[skipped] - full["segments"][skipped]["duration"] < 6.0
    # v2 also skips date ranges; there are none, and the spec wants the empty list.
    assert v2["segments"] == delta["segments"]
    assert 'RECENTLY-REMOVED-DATERANGES=""' in r_v2.text
    assert r_v2.text.replace(',RECENTLY-REMOVED-DATERANGES=""', "") == r_delta.text
    assert len(strict_playlists) == 3  # and all three pass the strict parser


async def test_blocking_reload_with_skip_returns_a_delta_when_the_part_lands(
    origin: Origin, client: httpx.AsyncClient
) -> None:
    feed = LiveFeeder(origin.registry, config=DELTA, frames=300)
    feed.seconds(8.2)
    hint = m3u8.loads((await client.get("/live/s1/hi/index.m3u8")).text).preload_hint.uri
    msn, part = (int(x) for x in hint.split(".")[:2])
    results: list[httpx.Response] = []

    async def reload() -> None:
        results.append(await client.get(
            f"/live/s1/hi/index.m3u8?_HLS_msn={msn}&_HLS_part={part}&_HLS_skip=YES"
        ))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reload)
            await parked(origin)
            feed.parts(1)
    r = results[0]
    assert r.status_code == 200
    assert r.headers["cache-control"] == "public, max-age=30"  # its URL names the part
    [delta] = validate_all([r.content])
    assert delta["skipped"] >= 1
    assert f'URI="{msn}.{part}.m4s"' in r.text
    # A plain reload of the same moment is the full playlist, under its own URL.
    full = await client.get("/live/s1/hi/index.m3u8")
    assert "#EXT-X-SKIP" not in full.text and len(full.content) > len(r.content)


async def test_skip_without_a_skip_boundary_returns_the_full_playlist(
    origin: Origin, client: httpx.AsyncClient
) -> None:
    feed = LiveFeeder(origin.registry, config=PackagerConfig(segment_target_s=1.0))
    feed.seconds(3.5)
    plain = await client.get("/live/s1/hi/index.m3u8")
    for value in ("YES", "v2"):
        r = await client.get(f"/live/s1/hi/index.m3u8?_HLS_skip={value}")
        assert r.content == plain.content
    assert "CAN-SKIP-UNTIL" not in plain.text
